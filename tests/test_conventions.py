"""Conventions a researcher brings from timm/torchvision: the head is found by their names, third-party
weights are read without unpickling code, the software is citable, registered names are listable."""
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import yaml

from cmwnet import CMWNet, MetaStep
from cmwnet.errors import CmwnetError
from cmwnet.models import head_name


class Body(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 6), nn.ReLU())


class TorchvisionStyle(Body):
    """Head under `classifier`, a Sequential as in torchvision's VGG / MobileNet / EfficientNet."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))

    def forward(self, x):
        return self.classifier(self.features(x))


class TimmStyle(Body):
    """timm: the head sits at `head.fc` and `get_classifier()` returns that module."""

    def __init__(self):
        super().__init__()
        self.head = nn.Sequential()
        self.head.add_module("norm", nn.LayerNorm(6))
        self.head.add_module("fc", nn.Linear(6, 3))

    def get_classifier(self):
        return self.head.fc

    def forward(self, x):
        return self.head(self.features(x))


class Headless(Body):
    def __init__(self):
        super().__init__()
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return self.out(self.features(x))


def _moved(model: nn.Module) -> list[str]:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    vnet = CMWNet([0, 1, 2], num_families=3, hidden=5)
    step = MetaStep(model, opt, vnet, torch.optim.SGD(vnet.parameters(), lr=0.1), virtual_params="head")
    return [n for n, m in zip(step.names, step.moved) if m]


def test_torchvision_classifier_sequential_is_the_head():
    model = TorchvisionStyle()
    assert head_name(model) == "classifier"
    assert _moved(model) == ["classifier.1.weight", "classifier.1.bias", "classifier.3.weight", "classifier.3.bias"]


def test_timm_get_classifier_is_found_among_named_modules():
    model = TimmStyle()
    assert head_name(model) == "head.fc"
    assert _moved(model) == ["head.fc.weight", "head.fc.bias"]   # not head.norm


def test_explicit_head_name_overrides_and_headless_model_says_how():
    model = Headless()
    with pytest.raises(CmwnetError, match=r"set model.head_name = '<module>'"):
        _moved(model)
    model.head_name = "out"
    assert _moved(model) == ["out.weight", "out.bias"]


def test_third_party_weights_are_read_without_unpickling_objects(tmp_path):
    import argparse

    from cmwnet.models.pretrained import read_state_dict

    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"module.fc.weight": torch.ones(2, 2)}}, good)
    assert list(read_state_dict(str(good))) == ["fc.weight"]
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"fc.weight": torch.ones(2, 2)}, "args": argparse.Namespace(lr=0.1)}, bad)
    with pytest.raises(CmwnetError, match="holds pickled objects beyond tensors") as e:
        read_state_dict(str(bad))
    assert "\n" not in str(e.value)


def test_citation_file_parses_and_cites_the_paper():
    from pathlib import Path

    cff = yaml.safe_load((Path(__file__).resolve().parents[1] / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("CMW-Net: Learning a Class-Aware Sample Weighting Mapping")
    assert [a["family-names"] for a in paper["authors"]] == ["Shu", "Yuan", "Meng", "Xu"]
    assert paper["year"] == 2023 and "Pattern Analysis and Machine Intelligence" in paper["journal"]


@pytest.mark.parametrize("kind,expected", [("models", "resnet32"), ("methods", "cmwnet"), ("losses", "ldam"),
                                           ("datasets", "cifar10")])
def test_train_lists_registered_names(kind, expected):
    r = subprocess.run([sys.executable, "-m", "cmwnet.train", "--list", kind], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = r.stdout.split()
    assert expected in names and names == sorted(names) and len(names) == len(set(names))


def test_train_list_bad_kind_is_one_error_line():
    r = subprocess.run([sys.executable, "-m", "cmwnet.train", "--list", "model"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "invalid choice: 'model'" in r.stderr
