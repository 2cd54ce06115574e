"""The README's Python example runs as written (from a copy of the repository's configs/)."""

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "the README has no Python example"
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "runs" / "api-demo" / "result.json").exists()
