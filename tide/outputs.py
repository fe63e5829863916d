"""Stage outputs are replaced, never written in place.

``dvc pull`` / ``dvc checkout`` may place outputs as hardlinks into DVC's cache (``.dvc/config``:
``cache.type = hardlink,symlink``); writing such a file in place would change the cached object
(and a copy onto it fails as "same file"). A stage therefore empties its output directory first,
or replaces a single output file whole (:func:`replace_text`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path


def replace_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a new file and move it onto ``path`` (never through a hardlink DVC may
    have placed there); the parent directory is created."""
    return replace_lines(path, [text])


def replace_lines(path: str | Path, chunks: Iterable[str]) -> Path:
    """:func:`replace_text` for text streamed in ``chunks`` (written as they come): ``path`` is
    replaced only once every chunk is written, so an error on the way leaves it as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(chunks)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def fresh_output_dir(path: str | Path) -> Path:
    """Remove ``path`` (a stage's own output directory) if present and create it empty."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
