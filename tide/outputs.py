"""Stage outputs are replaced, never written in place.

``dvc pull`` / ``dvc checkout`` may place outputs as hardlinks into DVC's cache (``.dvc/config``:
``cache.type = hardlink,symlink``); writing such a file in place would change the cached object
(and a copy onto it fails as "same file"). A stage therefore empties its output directory first.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def fresh_output_dir(path: str | Path) -> Path:
    """Remove ``path`` (a stage's own output directory) if present and create it empty."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
