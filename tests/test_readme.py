"""The README's examples run as written (issue 8): the spec example checks clean and trains
on its data, and the Python API block runs in a folder of its own."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import netspec

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def blocks(section: str, language: str) -> list[str]:
    """The ```language blocks under the README heading `## section`."""
    readme = README.read_text(encoding="utf-8")
    start = readme.index(f"\n## {section}\n")
    end = readme.find("\n## ", start + 1)
    return re.findall(rf"```{language}\n(.*?)```", readme[start : end if end > 0 else None], re.S)


def spec_example() -> str:
    """The first YAML block under "## The spec format"."""
    found = blocks("The spec format", "yaml")
    assert found, "the README's spec format section has no YAML block"
    return found[0]


def test_the_readme_spec_example_checks_clean():
    spec = netspec.loads(spec_example(), source="README.md")
    assert spec.warnings == []
    assert netspec.infer(spec, batch_size=2).output_shapes == [(2, 10)]


def test_the_readme_spec_example_trains_on_its_data(tmp_path):
    spec = netspec.loads(spec_example(), source="README.md")
    result = netspec.fit(spec, epochs=1, out=tmp_path / "run")
    (metrics,) = result.history
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["val_loss"])
    assert metrics["val_accuracy"] > 0.1  # better than chance after one epoch


def test_the_python_api_block_runs(tmp_path, monkeypatch, capsys):
    (code,) = blocks("Python API", "python")
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "digits_cnn.yaml", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    said = re.search(r"print\(report.*\)  # (.*)", code).group(1)
    assert printed[0] == said == "30698 [(None, 10)]"  # what the comment in the block says
    assert printed[1].startswith("loss ") and "(8, 1, 8, 8) (32, 1, 3, 3)" in printed[1]
    assert namespace["net"].grads["0.weight"].any()
    assert sorted(tmp_path.iterdir()) == [tmp_path / "specs"]  # it writes nothing


def test_the_readme_nesting_example_is_the_zoo_resnet18():
    text = README.read_text()
    start = text.index("```yaml\nblocks:")
    snippet = text[start + len("```yaml\n") : text.index("```", start + 7)]
    assert snippet in (ROOT / "specs" / "zoo" / "resnet18.yaml").read_text()
