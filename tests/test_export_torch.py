"""`netspec export --format torch` (issue 12): for every example, nesting fixture and zoo spec
the written file imports, its Net() takes netspec's exported safetensors with strict=True, and
in eval mode computes what netspec computes (float32 rtol 1e-4; all but the zoo in float64
too, rtol 1e-12). The file is ruff-clean (check and format) and imports only torch.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import netspec
from netspec.cli import app
from netspec.export.torch_code import torch_source
from netspec.export.torch_modules import TORCH_MODULE_ATTRIBUTES
from netspec.export.weights import ExportError, write_safetensors

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from tests.nested_specs import NESTED  # noqa: E402
from tests.test_zoo import MODELS as ZOO_SIDES  # noqa: E402
from tests.test_zoo import _load as zoo_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
ZOO = sorted(p.stem for p in (ROOT / "specs" / "zoo").glob("*.yaml"))
ZOO_SIDES = {**{name: side for name, (_, side) in ZOO_SIDES.items()}, "vgg16": 32}
runner = CliRunner()

# The graph shapes the examples leave out: an output that is a pool's indices, a value an
# inplace ReLU reads that another layer reads too, digit names in a graph, a Sequential
# whose members have names.
SIDE_OUTPUTS = """
name: side_outputs
input: {shape: [2, 8, 8]}
outputs: [head, pool.indices, 1]
layers:
  - {type: Conv2d, out_channels: 4, kernel_size: 3, padding: 1}
  - {type: ReLU, inplace: true}
  - {type: Add, name: again, inputs: [0, 1]}
  - {type: MaxPool2d, name: pool, kernel_size: 2, return_indices: true}
  - {type: Sequential, name: head, layers: [{type: Flatten, name: flat}, {type: Linear, name: fc, out_features: 3}]}
"""


def _load(name: str) -> netspec.Spec:
    if name in NESTED:
        return netspec.loads(NESTED[name], source=f"{name.replace(' ', '_')}.yaml")
    if name in ZOO:
        return zoo_spec(name, ZOO_SIDES[name]) if name != "vgg16" else _vgg16()
    if name == "side_outputs":
        return netspec.loads(SIDE_OUTPUTS, source="side_outputs.yaml")
    return netspec.load(ROOT / "specs" / f"{name}.yaml")


def _vgg16() -> netspec.Spec:
    path = ROOT / "specs" / "zoo" / "vgg16.yaml"
    text = path.read_text().replace("input: {shape: [3, 224, 224]}", "input: {shape: [3, 32, 32]}")
    return netspec.loads(text, source=str(path))


def _import(path: Path):
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _randomise_batchnorm(net) -> None:
    rng = np.random.default_rng(1)
    for key, value in net.state_dict().items():
        if key.endswith("running_mean"):
            value[...] = rng.normal(size=value.shape)
        elif key.endswith("running_var"):
            value[...] = rng.uniform(0.5, 2.0, size=value.shape)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("torch_export")


def _exported(name: str, dtype: str, folder: Path):
    """netspec's net (random weights and BN statistics) and the torch Net with its weights."""
    spec = _load(name)
    net = netspec.compile(spec, dtype=dtype, seed=2)
    _randomise_batchnorm(net)
    code = folder / f"{name.replace(' ', '_')}_{dtype}.py"
    code.write_text(torch_source(spec), encoding="utf-8")
    weights = write_safetensors(net.state_dict(), code.with_suffix(".safetensors"))
    model = _import(code).Net()
    if dtype == "float64":
        model.double()  # first: loading into float32 parameters would round the weights
    model.load_state_dict(safetensors_torch.load_file(str(weights)), strict=True)
    return spec, net.eval(), model.eval()


def _compare(spec, net, model, dtype: str, rtol: float, atol: float) -> None:
    shape = (1 if spec.name in ZOO else 3, *spec.input.shape)
    x = np.random.default_rng(0).normal(size=shape).astype(dtype)
    ours = net(x)
    with torch.no_grad():
        theirs = model(torch.from_numpy(x))
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs) == len(spec.graph.outputs)
    for mine, torchs, ref in zip(ours, theirs, spec.graph.outputs, strict=True):
        torchs = torchs.numpy()
        assert mine.shape == torchs.shape, ref
        if ref.endswith(".indices"):
            np.testing.assert_array_equal(mine, torchs, err_msg=ref)
        else:
            np.testing.assert_allclose(mine, torchs, rtol=rtol, atol=atol, err_msg=ref)


@pytest.mark.parametrize("name", [*EXAMPLES, "side_outputs", *NESTED])
def test_the_examples_compute_what_netspec_computes(name, folder):
    _compare(*_exported(name, "float32", folder), "float32", rtol=1e-4, atol=1e-5)
    _compare(*_exported(name, "float64", folder), "float64", rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", ZOO)
def test_the_zoo_computes_what_netspec_computes(name, folder):
    _compare(*_exported(name, "float32", folder), "float32", rtol=1e-4, atol=1e-5)


def test_the_files_are_ruff_clean_and_import_only_torch(folder):
    for name in [*EXAMPLES, "side_outputs", "resnet18", *NESTED]:
        (folder / f"lint_{name.replace(' ', '_')}.py").write_text(
            torch_source(_load(name)), encoding="utf-8"
        )
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    config = ("--config", str(ROOT / "pyproject.toml"))
    checked = subprocess.run([ruff, "check", *config, str(folder)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = [ruff, "format", "--check", *config, str(folder)]
    checked = subprocess.run(formatted, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for path in folder.glob("lint_*.py"):
        imports = [line for line in path.read_text().splitlines() if "import " in line]
        assert imports == ["import torch", "from torch import nn"], path.name


def test_module_paths_read_as_pytorch_writes_them():
    source = torch_source(_load("resnet18"))
    assert "self.layer1 = nn.Sequential(" in source
    assert "self.layer2[0].downsample = nn.Sequential(" in source
    # the downsample Sequential is called whole; the block's layers one by one
    assert "layer2_0_downsample = self.layer2[0].downsample(layer1_1_relu2)" in source
    assert "layer1_0_add = layer1_0_bn2 + maxpool" in source
    assert "self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)" in source
    lenet = torch_source(_load("lenet5"))
    assert (
        'self.add_module("0", nn.Conv2d(in_channels=1, out_channels=6, kernel_size=5, padding=2))'
        in lenet
    )
    assert "for module in self.children():" in lenet  # a chain of digit-named layers
    vgg = torch_source(_load("vgg11_bn"))
    assert "x = self.features(input)" in vgg and "return self.classifier(x)" in vgg


def test_an_inplace_layer_whose_input_is_read_elsewhere_is_written_out_of_place():
    source = torch_source(_load("side_outputs"))
    assert 'self.add_module("1", nn.ReLU())' in source  # its input `0` is read by `again` too
    assert "return head_fc, pool_indices, x1" in source
    assert "pool, pool_indices = self.pool(again)" in source


def test_the_module_attribute_list_is_torchs():
    public = {n for n in dir(torch.nn.Module()) if not n.startswith("_")}
    assert public <= TORCH_MODULE_ATTRIBUTES


@pytest.mark.parametrize("bad", ["train", "forward", "_modules"])
def test_a_layer_named_like_a_module_attribute_is_refused(bad):
    spec = netspec.loads(
        f"input: {{shape: [4]}}\nlayers:\n  - {{type: Linear, name: {bad}, out_features: 2}}\n"
    )
    with pytest.raises(ExportError, match=f"layer '{bad}' cannot be a torch module"):
        torch_source(spec)


def test_export_torch_from_the_cli_writes_the_code_and_its_weights(tmp_path):
    spec_path = ROOT / "specs" / "resnet_tiny.yaml"
    net = netspec.compile(netspec.load(spec_path))
    weights = write_safetensors(net.state_dict(), tmp_path / "w.safetensors")
    out = tmp_path / "model.py"
    result = runner.invoke(
        app, ["export", str(spec_path), "-w", str(weights), "-f", "torch", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.split() == [
        "wrote",
        str(out),
        "wrote",
        str(tmp_path / "model.safetensors"),
    ]
    model = _import(out).Net()
    model.load_state_dict(safetensors_torch.load_file(str(tmp_path / "model.safetensors")))
    alone = runner.invoke(
        app, ["export", str(spec_path), "-f", "torch", "-o", str(tmp_path / "a.py")]
    )
    assert alone.exit_code == 0 and alone.stderr.split() == ["wrote", str(tmp_path / "a.py")]
