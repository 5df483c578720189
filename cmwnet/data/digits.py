"""scikit-learn's digits (1,797 8x8 images, 10 classes): real data that ships inside the sklearn
wheel, so the demo and the tests need no download."""
from __future__ import annotations

import numpy as np

from .cifar import ImageArrays


def load_digits_arrays(test_fraction: float = 0.3, seed: int = 0) -> ImageArrays:
    """A fixed stratified train/test split; pixels 0..16 rescaled to uint8 0..255, shape N x 1 x 8 x 8."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    tr_x, te_x, tr_y, te_y = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return ImageArrays(tr_x, tr_y, te_x, te_y, [str(i) for i in range(10)])
