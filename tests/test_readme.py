"""The README's spec example is a spec: it checks clean and trains as written."""

from __future__ import annotations

import math
import re
from pathlib import Path

import netspec

README = Path(__file__).resolve().parent.parent / "README.md"


def spec_example() -> str:
    """The first YAML block under "## The spec format"."""
    section = README.read_text(encoding="utf-8").split("## The spec format", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's spec format section has no YAML block"
    return match.group(1)


def test_the_readme_spec_example_checks_clean():
    spec = netspec.loads(spec_example(), source="README.md")
    assert spec.warnings == []
    assert netspec.infer(spec, batch_size=2).output_shapes == [(2, 10)]


def test_the_readme_spec_example_trains_on_its_data():
    spec = netspec.loads(spec_example(), source="README.md")
    result = netspec.fit(spec, epochs=1)
    (metrics,) = result.history
    assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["val_loss"])
    assert metrics["val_accuracy"] > 0.1  # better than chance after one epoch
