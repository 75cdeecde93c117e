"""`netspec draw` (design.md §4): the analysed graph as DOT, one node per layer (name, type,
output shape), an edge per input, side outputs as labelled edges, blocks and Sequentials as
nested clusters. The .dot path needs only the graphviz package; svg/png need Graphviz's `dot`
program, so those tests run where it is installed and otherwise check the one-line refusal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import netspec
from netspec.cli import app

graphviz = pytest.importorskip("graphviz")

from netspec.export.draw import DrawError, dot_source, draw  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "specs" / "lenet5.yaml"
RESNET_TINY = ROOT / "specs" / "resnet_tiny.yaml"
HAS_DOT = shutil.which("dot") is not None
runner = CliRunner()

NODE = re.compile(r'^\s*("?)([^"\s]+)\1 \[label="([^"]*)"', re.MULTILINE)
EDGE = re.compile(r'^\s*"?([^"\s]+)"? -> "?([^"\s]+)"?(?: \[(.*)\])?$', re.MULTILINE)
CLUSTER = re.compile(r'^\s*subgraph "?cluster_([^"\s]+)"? \{', re.MULTILINE)

SIDE_OUTPUT = """
name: side
input: {shape: [1, 6, 6]}
layers:
  - Conv2d: {in_channels: 1, out_channels: 2, kernel_size: 3}
  - {type: ReLU, name: relu}
  - {type: MaxPool2d, name: pool, kernel_size: 2, return_indices: true}
outputs: [pool, pool.indices]
"""


def nodes(source: str) -> dict[str, list[str]]:
    return {name: label.split("\\n") for _, name, label in NODE.findall(source)}


def edges(source: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b, _ in EDGE.findall(source)]


def test_lenet_has_a_node_per_layer_with_its_type_and_shape():
    source = dot_source(netspec.load(LENET))
    drawn = nodes(source)
    assert drawn.pop("input") == ["input", "(N, 1, 28, 28)"]
    assert len(drawn) == 13
    assert drawn["0"] == ["0", "Conv2d", "(N, 6, 28, 28)"]
    assert drawn["2"] == ["2", "MaxPool2d", "(N, 6, 14, 14)"]
    assert drawn["6"] == ["6", "Flatten", "(N, 400)"]
    assert drawn["12"] == ["12", "Linear", "(N, 10)"]
    chain = ["input"] + [str(i) for i in range(13)]
    assert edges(source) == list(zip(chain[:-1], chain[1:], strict=True))


def test_resnet_tiny_draws_its_blocks_as_nested_clusters():
    spec = netspec.load(RESNET_TINY)
    source = dot_source(spec)
    assert set(CLUSTER.findall(source)) == set(spec.modules) == {"b1", "b2", "b2.downsample"}
    inner = source.index('subgraph "cluster_b2.downsample"')
    outer = source.index("subgraph cluster_b2 ")
    assert outer < inner < source.index('"b2.add" [label')  # inside b2, before its add
    assert nodes(source)["b2.downsample.0"] == ["b2.downsample.0", "Conv2d", "(N, 32, 16, 16)"]


def test_each_add_input_is_an_edge():
    spec = netspec.load(RESNET_TINY)
    drawn = edges(dot_source(spec))
    adds = [node for node in spec.graph.nodes if node.layer.type_name == "Add"]
    assert len(adds) == 2
    for add in adds:
        assert [a for a, b in drawn if b == add.name] == list(add.inputs)
    assert ("stem_relu", "b1.add") in drawn and ("b2.downsample.1", "b2.add") in drawn


def test_a_side_output_is_a_labelled_edge():
    source = dot_source(netspec.loads(SIDE_OUTPUT))
    assert nodes(source)["pool.indices"] == ["pool.indices", "(N, 2, 2, 2)"]
    side = [attrs for a, b, attrs in EDGE.findall(source) if (a, b) == ("pool", "pool.indices")]
    assert side and "label=indices" in side[0]


def test_an_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(DrawError, match=r"\.dot, \.svg or \.png"):
        draw(netspec.load(LENET), tmp_path / "net.jpg")


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), f"escaped: {result.exception!r}"
    return result


def test_cli_writes_dot(tmp_path):
    target = tmp_path / "out" / "net.dot"
    result = invoke("draw", str(RESNET_TINY), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("digraph resnet_tiny {")
    assert "wrote" in result.stderr


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
def test_cli_renders_svg(tmp_path):
    target = tmp_path / "net.svg"
    result = invoke("draw", str(LENET), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "<svg" in target.read_text()


def test_cli_without_dot_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    target = tmp_path / "net.png"
    result = invoke("draw", str(LENET), "-o", str(target))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "install Graphviz" in lines[0] and "apt install graphviz" in lines[0]
    assert not target.exists()


def test_cli_unknown_suffix_is_a_usage_error(tmp_path):
    result = invoke("draw", str(LENET), "-o", str(tmp_path / "net.jpg"))
    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if "must end in" in line]


def test_cli_without_the_package_says_pip_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_graphviz(name, *args, **kwargs):
        if name == "graphviz":
            raise ImportError("no graphviz")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_graphviz)
    result = invoke("draw", str(LENET), "-o", str(tmp_path / "net.dot"))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'netspec[export]'" in lines[0]


def fake_dot(tmp_path: Path, monkeypatch, script: str) -> None:
    """A `dot` on PATH that runs `script`: the svg/png wiring tested where Graphviz is not."""
    folder = tmp_path / "bin"
    folder.mkdir()
    program = folder / "dot"
    program.write_text(f"#!/bin/sh\ncat > /dev/null\n{script}\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{__import__('os').environ['PATH']}")


@pytest.mark.skipif(HAS_DOT, reason="a real dot is installed: test_cli_renders_svg runs")
def test_cli_writes_what_dot_renders(tmp_path, monkeypatch):
    fake_dot(tmp_path, monkeypatch, "echo '<svg>drawn</svg>'")
    target = tmp_path / "net.svg"
    result = invoke("draw", str(LENET), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text().strip() == "<svg>drawn</svg>"


@pytest.mark.skipif(HAS_DOT, reason="a real dot is installed")
def test_cli_a_failing_dot_is_one_line(tmp_path, monkeypatch):
    fake_dot(tmp_path, monkeypatch, "echo 'syntax error' >&2; exit 1")
    target = tmp_path / "net.png"
    result = invoke("draw", str(LENET), "-o", str(target))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not render net.png: syntax error" in lines[0], result.stderr
    assert not target.exists()
