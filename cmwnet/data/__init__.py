"""Data: readers, the one label pipeline (long tail, meta split, noise, partial labels), device-resident batches."""
from .builder import ARRAY_DATASETS, BUNDLE_BUILDERS, DataBundle, build_data
from .cifar import ImageArrays, load_cifar
from .digits import load_digits_arrays
from .gpu import Augment, Cycle, DeviceImages, LabelledImages, mixup
from .imbalance import class_counts, long_tail_counts, long_tail_indices
from .meta_set import balanced_subset, clean_meta_split, lowest_loss_per_class
from .noise import NoisyLabels, add_label_noise, transition_matrix
from .pipeline import LabelPlan, plan_labels
from . import folders  # noqa: E402,F401  registers the real-world data sets (ANIMAL-10N, WebVision, WebFG)

__all__ = ["ARRAY_DATASETS", "BUNDLE_BUILDERS", "DataBundle", "build_data", "ImageArrays", "load_cifar",
           "load_digits_arrays", "Augment", "Cycle", "DeviceImages", "LabelledImages", "mixup", "class_counts",
           "long_tail_counts", "long_tail_indices", "balanced_subset", "clean_meta_split",
           "lowest_loss_per_class", "NoisyLabels", "add_label_noise", "transition_matrix", "LabelPlan", "plan_labels"]
