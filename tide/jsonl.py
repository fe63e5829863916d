"""JSON Lines reading shared by every stage: rows with their line numbers, errors naming file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_jsonl(path: str | Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
    """``(line number, row)`` of each non-blank line of ``path``.

    A line that is not JSON raises ``error("<path>:<line>: not valid JSON (...)")``; what a row must
    contain is the caller's check, so its message can name the stage's own fields.
    """
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
