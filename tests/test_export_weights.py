"""Weights in and out as .safetensors under PyTorch's names (issue 12).

In: a torch model with netspec's module paths saved with `safetensors.torch.save_file(
model.state_dict())` loads as is (`num_batches_tracked` included) through read_weights,
`netspec predict` and `netspec eval`, and netspec's eval forward then computes what torch
does. Out: `netspec export --format safetensors` loads into the torch twin with strict=True.
Bad files are one line naming the file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import netspec
from netspec.cli import app
from netspec.training.weights import WeightsError, read_weights

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from tests.test_zoo import _load as zoo_spec  # noqa: E402
from tests.torch_oracle import TorchGraph, torch_layer  # noqa: E402
from tests.torchvision_models import resnet18  # noqa: E402

runner = CliRunner()
SPECS = Path(__file__).resolve().parent.parent / "specs"
RTOL, ATOL = 1e-4, 1e-5  # float32
ZOO_INPUT_64 = "input: {shape: [3, 64, 64]}"


def run(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def one_error(*args: str, code: int = 1) -> str:
    result = run(*args)
    assert result.exit_code == code, result.output
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith("error: ") and len(lines) <= 2, result.stderr
    return result.stderr


def randomise_batchnorm(model) -> None:
    """Running statistics away from 0 and 1, so that eval-mode BatchNorm is tested."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.num_batches_tracked.fill_(7)


def lenet5():
    spec = netspec.load(f"{SPECS}/lenet5.yaml")
    model = torch.nn.Sequential(*(torch_layer(layer) for layer in spec.layers))
    return spec, model, model


def resnet_tiny():
    """TorchGraph registers netspec's module paths under `layers`: its ModuleDict's state
    dict has netspec's names (`b2.downsample.0.weight`)."""
    spec = netspec.load(f"{SPECS}/resnet_tiny.yaml")
    model = TorchGraph(spec)
    return spec, model, model.layers


def zoo_resnet18():
    model = resnet18()
    return zoo_spec("resnet18", 64), model, model


MODELS = {"lenet5": lenet5, "resnet_tiny": resnet_tiny, "resnet18": zoo_resnet18}


@pytest.fixture(params=list(MODELS), scope="module")
def saved(request, tmp_path_factory):
    """(spec, torch model in eval mode, its state dict saved from torch as .safetensors)."""
    torch.manual_seed(0)
    spec, model, named = MODELS[request.param]()
    randomise_batchnorm(model)
    model.eval()
    path = tmp_path_factory.mktemp(request.param) / "weights.safetensors"
    safetensors_torch.save_file(named.state_dict(), str(path))
    return spec, model, path


def inputs(spec, samples: int = 3) -> np.ndarray:
    shape = (samples, *spec.input.shape)
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def torch_output(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_torch_weights_load_as_is_and_compute_what_torch_computes(saved):
    spec, model, path = saved
    state, meta = read_weights(path, spec)
    assert meta is None and list(state) == list(netspec.compile(spec).state_dict())
    if any(k.endswith("num_batches_tracked") for k in state):
        tracked = next(v for k, v in state.items() if k.endswith("num_batches_tracked"))
        assert tracked.dtype == np.int64 and tracked.shape == () and tracked == 7
    net = netspec.compile(spec)
    net.load_state_dict(state)
    x = inputs(spec)
    np.testing.assert_allclose(net.eval()(x), torch_output(model, x), rtol=RTOL, atol=ATOL)


def test_predict_from_the_cli_reads_safetensors(saved, tmp_path):
    spec, model, path = saved
    x = inputs(spec, samples=5)
    data, out = tmp_path / "x.npz", tmp_path / "p.npz"
    np.savez(data, x=x)
    spec_file = tmp_path / "spec.yaml"
    text = Path(spec.source_name).read_text()
    spec_file.write_text(text.replace("input: {shape: [3, 224, 224]}", ZOO_INPUT_64))
    result = run("predict", str(spec_file), "-w", str(path), "--data", str(data), "-o", str(out))
    assert result.exit_code == 0, result.output
    with np.load(out) as saved_prediction:
        np.testing.assert_allclose(
            saved_prediction["output"], torch_output(model, x), rtol=RTOL, atol=ATOL
        )


def test_eval_from_the_cli_gives_torchs_loss_on_the_validation_split(saved):
    spec, model, path = saved
    if spec.data is None:
        pytest.skip(f"{spec.name} has no data section to evaluate on")
    from netspec.training.setup import prepare

    data = prepare(spec, "cpu", spec.train.seed, np).data  # the split eval uses
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x_val.astype(np.float32)))
        expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(data.y_val))
    result = run("eval", spec.source_name, "-w", str(path))
    assert result.exit_code == 0, result.output
    (loss,) = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("loss")]
    assert abs(float(loss) - float(expected)) <= 1e-4  # printed to 4 decimals


def test_eval_from_the_cli_reads_safetensors_as_it_reads_the_checkpoint(tmp_path):
    spec_path = f"{SPECS}/lenet5.yaml"
    assert run("train", spec_path, "--epochs", "1", "--out", str(tmp_path / "run")).exit_code == 0
    checkpoint, exported = tmp_path / "run" / "last.npz", tmp_path / "w.safetensors"
    args = ("-w", str(checkpoint), "-f", "safetensors", "-o", str(exported))
    assert run("export", spec_path, *args).exit_code == 0
    from_checkpoint = run("eval", spec_path, "-w", str(checkpoint))
    from_safetensors = run("eval", spec_path, "-w", str(exported))
    assert from_checkpoint.exit_code == from_safetensors.exit_code == 0
    loss = [line for line in from_checkpoint.stdout.splitlines() if line.startswith("loss")]
    assert loss and loss[0] in from_safetensors.stdout.splitlines()
    said = " ".join(from_checkpoint.stdout.split())  # rich wraps a long tmp path anywhere
    assert "(epoch 1)" in said and "(epoch" not in from_safetensors.stdout


def test_netspec_weights_export_and_load_strictly_into_the_torch_twin(tmp_path):
    spec, model, _ = zoo_resnet18()
    net = netspec.compile(spec, seed=3)
    for key, value in net.state_dict().items():
        if key.endswith("running_var"):
            value[...] = np.linspace(0.5, 2.0, value.size)
    out = tmp_path / "resnet18.safetensors"
    from netspec.export.weights import write_safetensors

    write_safetensors(net.state_dict(), out)
    loaded = safetensors_torch.load_file(str(out))
    model.load_state_dict(loaded, strict=True)
    assert loaded["bn1.num_batches_tracked"].shape == ()  # 0-d stays 0-d
    x = inputs(spec, samples=2)
    np.testing.assert_allclose(torch_output(model.eval(), x), net.eval()(x), rtol=RTOL, atol=ATOL)
    assert not list(tmp_path.glob(".*.tmp"))


# -- one line for a file that does not fit or cannot be read ------------------------------------
@pytest.fixture
def lenet_file(tmp_path):
    spec, model, _ = lenet5()
    path = tmp_path / "lenet.safetensors"
    return spec, model.state_dict(), path


def save(state, path):
    safetensors_torch.save_file(state, str(path))
    return path


def test_an_unknown_name_says_which_and_the_close_one(lenet_file):
    spec, state, path = lenet_file
    state["0.wieght"] = state.pop("0.weight")
    with pytest.raises(
        WeightsError, match=r"lenet\.safetensors does not fit spec 'lenet5'.*'0\.wieght'"
    ) as info:
        read_weights(save(state, path), spec)
    assert info.value.hint == "did you mean '0.weight'?"


def test_a_wrapper_prefix_is_named(lenet_file):
    spec, state, path = lenet_file
    state = {f"module.{k}": v for k, v in state.items()}
    with pytest.raises(WeightsError, match="tensors the network lacks") as info:
        read_weights(save(state, path), spec)
    assert "prefix 'module.'" in info.value.hint


def test_missing_names_and_wrong_shapes_are_refused_before_reading(lenet_file, monkeypatch):
    spec, state, path = lenet_file
    bias = state.pop("12.bias")
    with pytest.raises(WeightsError, match=r"lacks 1 tensor of the network: 12\.bias"):
        read_weights(save(state, path), spec)
    assert bias.shape == (10,)
    state["12.bias"] = torch.zeros(11)
    save(state, path)
    import safetensors

    real = safetensors.safe_open

    class NoTensorReads:  # the shapes are checked from the header: no tensor is read
        def __init__(self, *args, **kwargs):
            self.file = real(*args, **kwargs)

        def __enter__(self):
            self.inner = self.file.__enter__()
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

        def keys(self):
            return self.inner.keys()

        def get_slice(self, name):
            return self.inner.get_slice(name)

        def get_tensor(self, name):
            raise AssertionError("a tensor was read before the layout was checked")

    monkeypatch.setattr(safetensors, "safe_open", NoTensorReads)
    with pytest.raises(
        WeightsError, match=r"'12\.bias' has shape \(11,\), the network expects \(10,\)"
    ):
        read_weights(path, spec)


def test_a_damaged_or_missing_file_is_one_line(tmp_path):
    spec_path = f"{SPECS}/lenet5.yaml"
    spec, model, _ = lenet5()
    path = save(model.state_dict(), tmp_path / "w.safetensors")
    path.write_bytes(path.read_bytes()[:-7])
    data = tmp_path / "x.npz"
    np.savez(data, x=inputs(spec))
    text = one_error("predict", spec_path, "-w", str(path), "--data", str(data))
    assert f"cannot read {path} as safetensors" in text
    (tmp_path / "junk.safetensors").write_bytes(b"\x05" * 40)
    assert "cannot read" in one_error("eval", spec_path, "-w", str(tmp_path / "junk.safetensors"))
    missing = one_error("eval", spec_path, "-w", str(tmp_path / "none.safetensors"))
    assert "weights file not found" in missing


def test_bfloat16_tensors_are_refused_with_what_to_do(lenet_file):
    spec, state, path = lenet_file
    state["0.weight"] = state["0.weight"].to(torch.bfloat16)
    with pytest.raises(WeightsError, match="'0.weight' is BF16.*model.float()"):
        read_weights(save(state, path), spec)


def test_float64_tensors_are_cast_to_the_networks_dtype(lenet_file):
    spec, state, path = lenet_file
    state = {k: v.double() for k, v in state.items()}
    loaded, _ = read_weights(save(state, path), spec)
    assert {v.dtype for v in loaded.values()} == {np.dtype("float32")}


def test_a_safetensors_file_under_another_suffix_is_read_as_one(lenet_file, tmp_path):
    spec, state, _ = lenet_file
    loaded, meta = read_weights(save(state, tmp_path / "pytorch_model.bin"), spec)
    assert meta is None and loaded["0.weight"].shape == (6, 1, 5, 5)


def test_writing_safetensors_without_the_package_is_one_line(tmp_path, monkeypatch):
    spec_path = str(SPECS / "lenet5.yaml")
    assert run("train", spec_path, "--epochs", "1", "--out", str(tmp_path / "run")).exit_code == 0
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    out = tmp_path / "w.safetensors"
    args = ("-w", str(tmp_path / "run" / "last.npz"), "-f", "safetensors", "-o", str(out))
    text = one_error("export", spec_path, *args)
    assert (
        "writing .safetensors needs the safetensors package: pip install 'netspec[export]'" in text
    )
    assert not out.exists()


def test_without_the_package_one_line_says_what_to_install(lenet_file, monkeypatch, tmp_path):
    spec, state, path = lenet_file
    save(state, path)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(WeightsError, match=r"pip install 'netspec\[export\]'"):
        read_weights(path, spec)
    checkpoint_free = run(
        "export",
        f"{SPECS}/lenet5.yaml",
        "-w",
        str(path),
        "-f",
        "torch",
        "-o",
        str(tmp_path / "m.py"),
    )
    assert checkpoint_free.exit_code == 1
    assert "pip install 'netspec[export]'" in checkpoint_free.stderr


# -- the export command's usage -----------------------------------------------------------------
def test_export_usage_errors_are_exit_2(tmp_path, lenet_file):
    spec, state, path = lenet_file
    save(state, path)
    spec_path = f"{SPECS}/lenet5.yaml"
    wrong = one_error("export", spec_path, "-w", str(path), "-f", "onnx", "-o", "m.py", code=2)
    assert "m.py must end in .onnx for --format onnx" in wrong
    unweighted = one_error("export", spec_path, "-f", "safetensors", "-o", "m.safetensors", code=2)
    assert "--format safetensors needs --weights" in unweighted
    assert not (tmp_path / "m.py").exists()


def test_export_safetensors_then_eval_reads_it_back_identically(tmp_path, lenet_file):
    spec, state, path = lenet_file
    save(state, path)
    out = tmp_path / "again.safetensors"
    result = run(
        "export", f"{SPECS}/lenet5.yaml", "-w", str(path), "-f", "safetensors", "-o", str(out)
    )
    assert result.exit_code == 0 and f"wrote {out}" in result.stderr
    again = safetensors_torch.load_file(str(out))
    assert sorted(again) == sorted(netspec.compile(spec).state_dict())  # the file sorts them
    for key, value in state.items():
        torch.testing.assert_close(again[key], value, rtol=0, atol=0)


def test_export_onnx_from_the_cli(tmp_path, lenet_file):
    pytest.importorskip("netspec.export.onnx")
    onnx = pytest.importorskip("onnx")
    spec, state, path = lenet_file
    save(state, path)
    out = tmp_path / "m.onnx"
    result = run("export", f"{SPECS}/lenet5.yaml", "-w", str(path), "-f", "onnx", "-o", str(out))
    assert result.exit_code == 0, result.output
    onnx.checker.check_model(onnx.load(str(out)))


def test_the_readme_path_from_train_to_onnxruntime_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("netspec.export.onnx")
    pytest.importorskip("onnxruntime")
    import re
    import shlex

    from tests.test_readme import blocks

    (commands,) = blocks("Models in and out", "bash")
    (code,) = blocks("Models in and out", "python")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "lenet5.yaml").write_text(Path(f"{SPECS}/lenet5.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    for line in commands.strip().splitlines():
        args = shlex.split(line)[1:]  # without `netspec`
        if args[0] == "train":
            args += ["--epochs", "1"]
        assert run(*args).exit_code == 0, line
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert re.fullmatch(r"\[\d( \d)*\]\n", printed), printed
