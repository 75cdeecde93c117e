"""The README's Python API block runs as written (issue 8), in a folder of its own."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(section: str) -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n## {section}\n")
    end = readme.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", readme[start : end if end > 0 else None], re.S)


def test_the_python_api_block_runs(tmp_path, monkeypatch, capsys):
    (blocks,) = python_blocks("Python API")
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "digits_cnn.yaml", tmp_path / "specs")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    said = re.search(r"print\(report.*\)  # (.*)", blocks).group(1)
    assert printed[0] == said == "30698 [(None, 10)]"  # what the comment in the block says
    assert printed[1].startswith("loss ") and "(8, 1, 8, 8) (32, 1, 3, 3)" in printed[1]
    assert namespace["net"].grads["0.weight"].any()
    assert sorted(tmp_path.iterdir()) == [tmp_path / "specs"]  # it writes nothing
