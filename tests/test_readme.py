"""Every ```python block of README.md runs.

The blocks run in the order they appear, in one namespace, as a reader would type them
into one session: a block may use the names an earlier block defined (`ns`, `jnp`).
"""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """`(line number, code)` of each ```python block of a Markdown text."""
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in _BLOCK.finditer(text)
    ]


def test_the_block_extractor_finds_each_block_whole():
    text = (
        "intro\n```python\na = 1\n```\n\n```bash\nls\n```\n```python\nb = a\nc = 2\n```\n"
    )
    assert python_blocks(text) == [(2, "a = 1\n"), (9, "b = a\nc = 2\n")]


def test_every_readme_python_block_runs(tmp_path, monkeypatch):
    """In a temporary directory: the blocks that write files leave none behind."""
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 6, "README.md lost its examples"
    namespace: dict = {"__name__": "readme"}
    for line, code in blocks:
        try:
            exec(compile(code, f"README.md, block at line {line}", "exec"), namespace)
        except Exception as error:
            pytest.fail(f"README.md block at line {line} fails: {error!r}\n{code}")
