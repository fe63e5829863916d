"""Deterministic random streams: one ``random.Random`` per (seed, purpose), never the global RNG.

Streams are derived with SHA-256 of ``"{seed}/{name}/..."`` so that adding a family or a split
does not shift the numbers another one draws (Python's ``hash()`` is salted per process; not used).
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, *names: str | int) -> int:
    """A 64-bit integer seed for the stream named ``names`` under the world ``seed``."""
    text = "/".join([str(seed), *(str(n) for n in names)])
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def derive_rng(seed: int, *names: str | int) -> random.Random:
    """A fresh ``random.Random`` for the stream named ``names`` (same arguments, same numbers)."""
    return random.Random(derive_seed(seed, *names))
