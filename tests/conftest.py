"""Shared test set-up: one torch thread per worker, deterministic seeds, repo paths."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    torch = None


@pytest.fixture
def seed() -> int:
    """Seed python and torch RNGs; returns the seed."""
    random.seed(0)
    if torch is not None:
        torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
