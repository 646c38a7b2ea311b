"""The Python examples in docs/protocol.md run (docs that are not executed drift)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
BLOCKS = re.findall(r"^( *)```python\n(.*?)^\1```", DOC.read_text(), flags=re.M | re.S)


def test_doc_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_runs(index: int) -> None:
    _indent, code = BLOCKS[index]
    exec(compile(textwrap.dedent(code), f"{DOC.name}[{index}]", "exec"), {})
