"""Real-world data sets read in their own on-disk formats, on small trees generated in those formats."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cmwnet.config import config_from_dict
from cmwnet.data import build_data
from cmwnet.paper import fake_trees as ft
from cmwnet.data import folders
from cmwnet.data.file_source import CropAugment, FileImages, FileSource, decode_image
from cmwnet.data.gpu import DeviceImages
from cmwnet.errors import CmwnetError

CPU = torch.device("cpu")
AUG = {"crop_pad": 0, "flip": True, "normalize": "imagenet"}


def data_cfg(**d):
    d.setdefault("augment", AUG)
    return config_from_dict({"data": d}).data


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees")
    info = {"animal": ft.make_animal10n(str(root / "animal"), per_class=[3, 2, 2, 2, 2, 2, 2, 2, 2, 1],
                                        test_per_class=1, noise_rate=0.3, seed=1)}
    info["wv"] = ft.make_webvision(str(root / "wv"), num_classes=3, per_class=[4, 3, 2], flickr_per_class=1,
                                   val_per_class=2, imagenet_per_class=2, extra_classes=2)
    for i, sub in enumerate(("aircraft", "bird", "car")):
        info[sub] = ft.make_webfg(str(root / "fg"), sub, num_classes=4, per_class=3, val_per_class=1,
                                  meta_per_class=3, seed=i)
    info["if"] = ft.make_image_folder(str(root / "if"), classes=("x", "y", "z"), per_class=[5, 4, 3],
                                      meta_per_class=2)
    return root, info


# -- ANIMAL-10N ---------------------------------------------------------------------------------------
def test_animal10n_labels_come_from_the_file_name_prefix(trees):
    root, info = trees
    train, test = folders.read_animal10n(str(root / "animal"))
    names = [os.path.basename(p) for p in train.paths]
    assert all(n.split("_")[0] == str(y) for n, y in zip(names, train.labels))
    assert sorted(train.labels.tolist()) == sorted(info["animal"]["train_observed"].tolist())
    assert len(train) == 20 and len(test) == 10 and test.labels.tolist() == sorted(test.labels.tolist())
    bundle = build_data(data_cfg(name="animal10n", root=str(root / "animal")), CPU)
    assert isinstance(bundle.train, DeviceImages)  # 64x64 images: decoded once, held on the device
    assert bundle.num_classes == 10 and bundle.class_counts == np.bincount(train.labels, minlength=10).tolist()
    assert tuple(bundle.train.images.shape) == (20, 3, 32, 32)
    assert bundle.info["noise"]["kind"] == "real"


def test_animal10n_also_reads_the_raw_image_layout_and_rejects_other_names(tmp_path):
    ft.make_animal10n(str(tmp_path / "raw_image"), per_class=1, test_per_class=1)
    train, _ = folders.read_animal10n(str(tmp_path))
    assert len(train) == 10
    Image.new("RGB", (32, 32)).save(tmp_path / "raw_image" / "training" / "cat.jpg")
    with pytest.raises(CmwnetError, match="not named <label>_<id>.jpg"):
        folders.read_animal10n(str(tmp_path))


@pytest.mark.parametrize("name,where", [("animal10n", "dm.kaist.ac.kr"), ("mini_webvision", "webvision"),
                                        ("webvision", "webvision"), ("web_bird", "weblyFG"),
                                        ("image_folder", "train/<class>")])
def test_a_missing_data_set_stops_with_one_line_saying_where_to_get_it(tmp_path, name, where):
    with pytest.raises(CmwnetError, match=where) as e:
        build_data(data_cfg(name=name, root=str(tmp_path / "nothing")), CPU)
    assert "\n" not in str(e.value)


# -- WebVision ----------------------------------------------------------------------------------------
def test_webvision_file_lists_google_flickr_val_and_imagenet(trees):
    root, info = trees
    wv = str(root / "wv")
    train, val, inet = folders.read_webvision(wv, 3, ("google",))
    google = info["wv"]["google"]["observed"]
    assert train.labels.tolist() == [y for y in google.tolist() if y < 3]   # classes >= 3 dropped, order kept
    assert all(p.startswith(os.path.join(wv, "google", "q")) for p in train.paths)
    assert all(os.path.dirname(p) == os.path.join(wv, "val_images_256") for p in val.paths)
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert all(os.path.dirname(p) == os.path.join(wv, "imagenet", "val") for p in inet.paths)
    assert sorted(inet.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    both, _, _ = folders.read_webvision(wv, 3, ("google", "flickr"))
    assert len(both) == len(train) + 3 and any("/flickr/" in p for p in both.paths)


def test_mini_and_full_webvision_bundles(trees):
    root, _ = trees
    mini = build_data(data_cfg(name="mini_webvision_32px", root=str(root / "wv")), CPU)
    assert mini.num_classes == 50 and isinstance(mini.train, FileSource)
    assert len(mini.train) == 4 + 3 + 2 + 2 * 2 and set(mini.extra_tests) == {"imagenet"}   # 2 extra classes < 50
    assert mini.info["sources"] == ["google"]
    full = build_data(data_cfg(name="webvision_80px", root=str(root / "wv")), CPU)
    assert full.num_classes == 1000 and len(full.train) == len(mini.train) + 5
    x, y, pos = next(full.train.batches(4, shuffle=True, augment=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (4, 3, 80, 80) and torch.equal(y, full.train.labels[pos])


def test_webvision_errors_name_the_problem(tmp_path, trees):
    root, _ = trees
    bad = tmp_path / "wv"
    ft.make_webvision(str(bad), num_classes=2, per_class=1, flickr_per_class=0)
    os.remove(bad / "imagenet" / "val" / "val.txt")
    with pytest.raises(CmwnetError, match="image-net.org"):
        folders.read_webvision(str(bad), 2, ("google",))
    with open(bad / "info" / "train_filelist_google.txt", "a") as f:
        f.write("google/q0001/broken.jpg\n")
    with pytest.raises(CmwnetError, match="line .* is not '<image path> <label>'"):
        folders.read_label_list(str(bad / "info" / "train_filelist_google.txt"), str(bad), 2, "webvision")


# -- WebFG-496 and the curated meta sets ----------------------------------------------------------------
@pytest.mark.parametrize("sub,source", [("aircraft", "fgvc-aircraft-2013b"), ("bird", "CUB_200_2011"),
                                        ("car", "stanford_cars")])
def test_webfg_meta_images_come_from_the_curated_set_matched_by_class_name(trees, sub, source):
    root, info = trees
    train, test, meta, extra = folders.read_webfg(str(root / "fg"), sub, per_class=2, meta_needed=True)
    assert extra == {"meta_source": source, "meta_alignment": "name"}
    assert train.classes == sorted(ft.folder_name(c) for c in info[sub]["classes"])
    assert len(test) == 4 and np.bincount(meta.labels).tolist() == [2, 2, 2, 2]
    # the generated curated image of class c has class c's colour: the match by name must keep that
    pal = ft._palette(4)
    names = info[sub]["classes"]
    for path, y in zip(meta.paths, meta.labels):
        true = names.index(next(n for n in names if ft.folder_name(n) == train.classes[y]))
        assert np.abs(decode_image(path, None).reshape(-1, 3).mean(0) - pal[true]).max() < 12


def test_fgvc_aircraft_class_index_is_the_position_in_sorted_variants(trees):
    root, _ = trees
    fl = folders.read_fgvc_aircraft(str(root / "fg"))
    assert fl.classes == sorted(ft.AIRCRAFT[:4])
    assert len(fl) == 12 and all(p.endswith(".jpg") and "/data/images/" in p for p in fl.paths)


def test_cub_keeps_only_its_training_split(trees):
    root, _ = trees
    fl = folders.read_cub(str(root / "fg"))
    assert len(fl) == 4 * 3 and fl.classes == ft.BIRDS[:4]   # 6 images per class written, half in the test split


def test_meta_alignment_by_position_when_names_differ_and_error_when_counts_differ():
    meta = folders.FileList(["a", "b"], np.array([0, 1]), ["Foo 1", "Bar 2"])
    out, how = folders.align_classes(meta, ["x", "y"])
    assert how == "position" and out.labels.tolist() == [0, 1]
    out, how = folders.align_classes(meta, ["bar_2", "foo-1"])
    assert how == "name" and out.labels.tolist() == [1, 0]
    with pytest.raises(CmwnetError, match="cannot be matched"):
        folders.align_classes(meta, ["x", "y", "z"])


def test_webfg_without_its_curated_set_says_where_to_get_it(tmp_path):
    ft.make_webfg(str(tmp_path), "aircraft", num_classes=2, per_class=1)
    import shutil

    shutil.rmtree(tmp_path / "fgvc-aircraft-2013b")
    with pytest.raises(CmwnetError, match="robots.ox.ac.uk"):
        build_data(data_cfg(name="web_aircraft_32px", root=str(tmp_path), meta={"kind": "clean"}), CPU)
    bundle = build_data(data_cfg(name="web_aircraft_32px", root=str(tmp_path), meta={"kind": "lowest_loss"}), CPU)
    assert bundle.meta is None and bundle.num_classes == 2


def test_webfg_bundle_has_a_clean_meta_set_on_the_device(trees):
    root, _ = trees
    b = build_data(data_cfg(name="web_car_32px", root=str(root / "fg"), meta={"kind": "clean", "per_class": 3}), CPU)
    assert isinstance(b.meta, DeviceImages) and b.meta.labels.bincount().tolist() == [3, 3, 3, 3]
    assert b.info["meta_source"] == "stanford_cars" and b.info["meta_size"] == 12


# -- generic image folder ------------------------------------------------------------------------------
def test_image_folder_meta_from_meta_folder_or_held_out_from_train(trees, tmp_path):
    root, info = trees
    b = build_data(data_cfg(name="image_folder_32px", root=str(root / "if"), meta={"kind": "clean", "per_class": 2}),
                   CPU)
    assert len(b.train) == 12 and len(b.meta) == 6
    ft.make_image_folder(str(tmp_path), classes=("a", "b"), per_class=4)
    # without meta/, the folder's own labels are the suspects: a "clean" meta set from them is refused
    with pytest.raises(CmwnetError, match=r"has no meta/ folder.*meta/<class>/.*lowest_loss"):
        build_data(data_cfg(name="image_folder_32px", root=str(tmp_path), meta={"kind": "clean", "per_class": 1}), CPU)
    # with synthetic noise on top, the folder's labels are the true ones: the clean meta set is held out from them
    b = build_data(data_cfg(name="image_folder_32px", root=str(tmp_path), meta={"kind": "clean", "per_class": 1},
                            noise={"kind": "sym", "rate": 0.5}), CPU)
    assert len(b.train) == 6 and len(b.meta) == 2
    b = build_data(data_cfg(name="image_folder_32px", root=str(tmp_path), meta={"kind": "lowest_loss", "per_class": 1}),
                   CPU)
    assert len(b.train) == 8 and b.meta is None
    with pytest.raises(CmwnetError, match="not a training class"):
        folders.read_image_folder(str(tmp_path / "val"), classes=["a"])


def test_synthetic_noise_on_top_of_a_folder_data_set(trees):
    root, _ = trees
    b = build_data(data_cfg(name="image_folder_32px", root=str(root / "if"), noise={"kind": "sym", "rate": 0.5}), CPU)
    assert b.info["noise"]["kind"] == "sym"
    assert not torch.equal(b.train.labels, b.train.clean_labels)


# -- decoding and batch transforms -----------------------------------------------------------------------
def test_decode_matches_torchvision_resize_and_center_crop(tmp_path):
    from torchvision import transforms as T

    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(30, 47), (53, 41), (24, 24)]):
        path = str(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        ours = decode_image(path, 24)
        ref = np.asarray(T.Compose([T.Resize(24), T.CenterCrop(24)])(Image.open(path).convert("RGB")))
        assert ours.shape == (24, 24, 3) and np.array_equal(ours, ref)


def test_center_crop_and_random_crop_are_windows_of_the_input():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 9, 9), dtype=torch.uint8)
    aug = CropAugment(5, "random_crop", flip=False, normalize="none")
    assert torch.allclose(aug.to_float(x), x[:, :, 2:7, 2:7].float() / 255)
    out = aug(x, g)
    for b in range(6):  # every output is one 5x5 window of its own input
        hits = [(i, j) for i in range(5) for j in range(5)
                if torch.allclose(out[b], x[b, :, i:i + 5, j:j + 5].float() / 255)]
        assert len(hits) >= 1
    flipped = CropAugment(9, "random_crop", flip=True, normalize="none")(x, torch.Generator().manual_seed(3))
    same = [torch.allclose(flipped[b], x[b].float() / 255) for b in range(6)]
    mirrored = [torch.allclose(flipped[b], x[b].flip(2).float() / 255) for b in range(6)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored) and any(same)


def test_random_resized_crop_resamples_its_box_bilinearly():
    x = torch.randint(0, 256, (2, 3, 12, 16), dtype=torch.uint8)
    aug = CropAugment(8, "random_resized_crop", flip=False, normalize="none")
    boxes = aug.crop_boxes(500, 12, 16, torch.Generator().manual_seed(0), CPU)
    top, left, h, w = boxes.unbind(1)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 12) & (left + w <= 16) & (h >= 1) & (w >= 1)).all())
    area = h * w / (12 * 16)
    assert float(area.min()) >= 0.07 and float(area.max()) <= 1.0
    # a fixed box: the output is that box resized to 8x8 with bilinear interpolation (no antialias)
    aug.crop_boxes = lambda b, hh, ww, g, d: torch.tensor([[2.0, 4.0, 8.0, 8.0], [0.0, 0.0, 12.0, 16.0]])
    out = aug(x, torch.Generator())
    xf = x.float() / 255
    assert torch.allclose(out[0], xf[0, :, 2:10, 4:12], atol=1e-5)   # same size: the window itself
    ref = F.interpolate(xf[1:2], size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(out[1:2], ref, atol=1e-5)


def test_file_source_matches_decoding_everything_and_prefetches_in_order(trees):
    root, _ = trees
    fl = folders.read_image_folder(str(root / "if" / "train"))
    aug = CropAugment(32, "random_crop", True, "imagenet")
    src = FileSource.from_files(fl.paths, fl.labels, 36, aug, CPU)
    ref = torch.from_numpy(folders.decode_all(fl.paths, 36))
    order = torch.randperm(len(fl), generator=torch.Generator().manual_seed(0))
    src.plan(order, 5)
    assert len(src.images._ahead) == 2                      # two batches decoding ahead
    for k in range(3):
        pos = order[k * 5:(k + 1) * 5]
        assert torch.equal(src.images[pos], ref[pos])
    assert torch.equal(src.images[torch.tensor([3, 1])], ref[[3, 1]])   # an unplanned batch is still right
    xs = torch.cat([x for x, _, _ in src.batches(5)])
    assert torch.allclose(xs, aug.to_float(ref))
    small = src.subset(torch.tensor([0, 5, 7]))
    assert isinstance(small, DeviceImages) and torch.equal(small.images, ref[[0, 5, 7]])
    assert small.ids.tolist() == [0, 5, 7]
    assert FileImages(fl.paths, 36, CPU).shape == (12, 3, 36, 36)


def test_engine_trains_on_a_file_backed_source(trees, tmp_path):
    from cmwnet.engine import train

    root, _ = trees
    d = {"name": "folder_run", "data": {"name": "image_folder_32px", "root": str(root / "if"), "batch_size": 4,
                                       "test_batch_size": 4, "augment": AUG,
                                       "meta": {"kind": "lowest_loss", "per_class": 1, "batch_size": 3}},
         "model": {"name": "tiny_cnn"}, "optim": {"lr": 0.05, "epochs": 2},
         "method": {"name": "cmwnet", "start_epoch": 1, "weight_net": {"lr": 1e-3}},
         "run": {"out": str(tmp_path), "progress": False, "plot": False, "device": "cpu"}}
    r = train(config_from_dict(d), quiet=True)
    assert r["epochs"] == 2 and r["data"]["train_size"] == 12 and "mean_weight" in open(
        tmp_path / "folder_run" / "metrics.jsonl").read()


def test_a_fixed_crop_data_set_ignores_the_default_crop_pad_but_refuses_one_asked_for(trees):
    """The default crop_pad (4, for in-memory CIFAR-like data) must not stop a config that never mentions it."""
    root, _ = trees
    cfg = config_from_dict({"data": {"name": "image_folder_32px", "root": str(root / "if")}}).data
    assert cfg.augment.crop_pad == 4                                      # the default, not asked for
    assert isinstance(build_data(cfg, CPU).train.augment, CropAugment)
    with pytest.raises(CmwnetError, match=r"crop_pad does not apply to image_folder_32px.*crop_pad: 0"):
        build_data(data_cfg(name="image_folder_32px", root=str(root / "if"), augment={"crop_pad": 4}), CPU)


def test_the_image_folder_example_config_trains_on_a_folder(trees, tmp_path):
    """configs/image_folder_cmwnet.yaml, the README's folder recipe, runs as written (shortened) on a tree."""
    from cmwnet.config import load_config
    from cmwnet.engine import train

    root, _ = trees
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = load_config(os.path.join(here, "cmwnet", "configs", "image_folder_cmwnet.yaml"),
                      [f"data.root={root / 'if'}", "data.batch_size=4", "data.meta.batch_size=3",
                       "data.meta.per_class=1", "optim.epochs=2", "method.start_epoch=1", "model.name=tiny_cnn",
                       f"run.out={tmp_path}", "run.progress=false", "run.plot=false", "run.device=cpu"])
    assert cfg.data.meta.kind == "lowest_loss" and cfg.method.name == "cmwnet"
    r = train(cfg, quiet=True)
    assert r["epochs"] == 2 and (tmp_path / "image_folder_cmwnet" / "samples.npz").exists()
