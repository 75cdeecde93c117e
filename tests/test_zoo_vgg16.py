"""specs/zoo/vgg16.yaml against torchvision's vgg16 (cfg "D", no BatchNorm): the published
parameter count, and torchvision's state dict loading as is, with equal float64 outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import netspec

SPEC = Path(__file__).resolve().parent.parent / "specs" / "zoo" / "vgg16.yaml"
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def test_vgg16_has_torchvisions_parameter_count():
    assert netspec.infer(netspec.load(SPEC)).totals.params == 138_357_544


def test_torchvisions_vgg16_state_dict_loads_as_is_and_computes_the_same():
    torch = pytest.importorskip("torch")
    from tests.torchvision_models import VGG, make_layers

    torch.manual_seed(0)
    model = VGG(make_layers(VGG16)).double().eval()
    spec = netspec.load(SPEC)
    spec = spec.model_copy(update={"input": spec.input.model_copy(update={"shape": [3, 32, 32]})})
    net = netspec.compile(spec, dtype="float64").eval()
    state = model.state_dict()
    assert list(net.state_dict()) == list(state)
    net.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(x), expected, rtol=1e-9, atol=1e-12)
