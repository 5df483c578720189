"""The large models of Sections 5-6: published sizes, forward on tiny inputs, local weights, head-only
virtual steps."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cmwnet import CMWNet, MetaStep
from cmwnet.errors import CmwnetError
from cmwnet.models import create_model, head_name


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def on_meta(name, num_classes, **kw):
    """A full-size model built without memory or init cost (shapes only)."""
    with torch.device("meta"):
        return create_model(name, num_classes, **kw)


# -- sizes and shapes ------------------------------------------------------------------------------------
def test_inception_resnet_v2_has_the_released_size_and_grids():
    m = on_meta("inception_resnet_v2", 1000)
    # Keras' InceptionResNetV2 (Google's released network): 55,813,192 trainable parameters, with BN
    # gammas off; PyTorch's BN has one gamma per channel: 30,272 more (half of Keras' 60,544 BN buffers)
    assert n_params(m) == 55_813_192 + 30_272
    assert m.stem[-1].out_channels == 320 and m.reduction_a.out_channels == 1088
    assert m.reduction_b.out_channels == 2080 and m.fc.in_features == 1536
    assert len(m.repeat_a) == 10 and len(m.repeat_b) == 20 and len(m.repeat_c) == 10
    assert isinstance(m.repeat_c[-1].relu, nn.Identity) and m.repeat_c[-1].scale == 1.0
    # spatial grids 35 -> 17 -> 8 at 299 pixels (checked on a narrow copy: widths do not change grids)
    small = create_model("inception_resnet_v2", 7, blocks=[1, 1, 1], width=0.0625).eval()
    sizes = {}
    for name in ("stem", "reduction_a", "reduction_b"):
        getattr(small, name).register_forward_hook(lambda mod, i, o, name=name: sizes.__setitem__(name, o.shape[-1]))
    with torch.no_grad():
        assert small(torch.randn(1, 3, 299, 299)).shape == (1, 7)
    assert sizes == {"stem": 35, "reduction_a": 17, "reduction_b": 8}
    with torch.no_grad():
        assert small(torch.randn(2, 3, 75, 75)).shape == (2, 7)   # the smallest input it takes


def test_vgg19_bn_is_torchvisions_with_the_head_named_fc():
    import torchvision

    m = on_meta("vgg19_bn", 1000)
    assert n_params(m) == 143_678_248                       # torchvision vgg19_bn, 1000 classes
    with torch.device("meta"):
        ref = torchvision.models.vgg19_bn(weights=None)
    ours = {k.replace("fc.", "classifier.6."): v.shape for k, v in m.state_dict().items()}
    assert ours == {k: v.shape for k, v in ref.state_dict().items()}
    small = create_model("vgg19_bn", 10, width=0.125, hidden=32)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert isinstance(getattr(small, head_name(small)), nn.Linear)


def test_resnet50_is_torchvisions_and_loads_a_c2d_checkpoint(tmp_path):
    import torchvision

    with torch.device("meta"):
        assert n_params(create_model("resnet50", 1000)) == n_params(torchvision.models.resnet50()) == 25_557_032
    small = dict(layers=[1, 1, 1, 1], width_per_group=16)
    src = create_model("resnet50", 50, **small)
    # C2D / SupContrast layout: {'model': {'module.encoder.<name>'}}, `shortcut` for `downsample`
    state = {f"module.encoder.{k}".replace(".downsample.", ".shortcut."): v
             for k, v in src.state_dict().items() if not k.startswith("fc.")}
    state["module.head.0.weight"] = torch.zeros(128, 2048)    # a projection head: skipped
    torch.save({"model": state, "epoch": 3}, tmp_path / "c2d.pth")
    dst = create_model("resnet50", 7, pretrained=str(tmp_path / "c2d.pth"), **small)
    for k, v in src.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(dst.state_dict()[k], v), k
    assert dst.fc.out_features == 7
    torch.save({"model": create_model("tiny_cnn", 3).state_dict()}, tmp_path / "other.pth")
    with pytest.raises(CmwnetError, match="fits only 0 of"):
        create_model("resnet50", 7, pretrained=str(tmp_path / "other.pth"), **small)
    with pytest.raises(CmwnetError, match="not found"):
        create_model("resnet50", 7, pretrained=str(tmp_path / "missing.pth"), **small)


# -- bilinear CNN ---------------------------------------------------------------------------------------------
def test_bcnn_bilinear_pooling_by_hand():
    m = create_model("bcnn", 3, width=0.0625)       # 32 feature channels
    m.features = nn.Identity()
    m.fc = nn.Linear(4, 3)                           # a 2-channel "feature map"
    f = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]], [[3.0, 1.0], [-1.0, 2.0]]]])   # (1, 2, 2, 2)
    a, b = f[0, 0].reshape(-1), f[0, 1].reshape(-1)
    gram = torch.tensor([a @ a, a @ b, b @ a, b @ b]) / 4
    z = torch.sign(gram) * torch.sqrt(gram.abs() + 1e-5)
    expected = m.fc(z / z.norm())
    assert torch.allclose(m(f), expected[None], atol=1e-6)


def test_bcnn_two_steps_frozen_features_then_init_from_step_one(tmp_path):
    vgg = create_model("bcnn", 5, width=0.125).features
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, tmp_path / "vgg16.pth")
    step1 = create_model("bcnn", 5, width=0.125, pretrained=str(tmp_path / "vgg16.pth"), freeze_features=True)
    assert all(torch.equal(a, b) for a, b in zip(step1.features.state_dict().values(), vgg.state_dict().values()))
    assert [n for n, p in step1.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    opt = torch.optim.Adam(step1.parameters(), lr=0.1)
    before = copy.deepcopy(step1.state_dict())
    F.cross_entropy(step1(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    after = step1.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("features."))
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    torch.save({"model": after, "epoch": 1}, tmp_path / "checkpoint.pt")     # a run's checkpoint.pt
    step2 = create_model("bcnn", 5, width=0.125, init=str(tmp_path / "checkpoint.pt"))
    assert all(torch.equal(after[k], v) for k, v in step2.state_dict().items())
    assert all(p.requires_grad for p in step2.parameters())
    with pytest.raises(CmwnetError, match="does not fit the model"):
        create_model("bcnn", 6, width=0.125, init=str(tmp_path / "checkpoint.pt"))


# -- the head-only virtual step on a large backbone ---------------------------------------------------------
class FCOnly(nn.Module):
    def __init__(self, fc):
        super().__init__()
        self.fc = copy.deepcopy(fc)

    def forward(self, f):
        return self.fc(f)


def test_head_only_meta_gradient_equals_a_classifier_on_fixed_features():
    torch.manual_seed(0)
    model = create_model("vgg19_bn", 4, width=0.0625, hidden=16, dropout=0.0)   # BN in train mode: batch stats
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, 32, 32, generator=g), torch.randint(0, 4, (6,), generator=g)
    mx, my = torch.randn(5, 3, 32, 32, generator=g), torch.randint(0, 4, (5,), generator=g)
    vnet = CMWNet([0, 1, 2, 0], num_families=3, hidden=8)
    step = MetaStep(model, torch.optim.SGD(model.parameters(), lr=0.5), vnet, torch.optim.SGD(vnet.parameters(), lr=0.1),
                    virtual_params="head", normalize="mean")
    grads, meta = step.meta_gradient(*step.reweighting_losses(x, y, mx, my))
    # the same objective with the backbone's train-mode features computed once and held fixed
    backbone = copy.deepcopy(model)
    backbone.fc = nn.Identity()
    with torch.no_grad():
        fx, fmx = backbone(x), backbone(mx)
    head = FCOnly(model.fc)
    ref = MetaStep(head, torch.optim.SGD(head.parameters(), lr=0.5), vnet, torch.optim.SGD(vnet.parameters(), lr=0.1),
                   virtual_params="all", normalize="mean")
    ref_grads, ref_meta = ref.meta_gradient(*ref.reweighting_losses(fx, y, fmx, my))
    assert torch.allclose(meta, ref_meta, atol=1e-5)
    for a, b in zip(grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert any(float(a.abs().sum()) > 0 for a in grads)
    # a whole iteration moves the weight net and the model
    w0 = [p.clone() for p in vnet.parameters()]
    fc0 = model.fc.weight.clone()
    step.step(x, y, mx, my, 0)
    assert any(not torch.equal(a, b) for a, b in zip(w0, vnet.parameters()))
    assert not torch.equal(fc0, model.fc.weight)
