"""Fixtures of the distillation tests, built by :mod:`distill_world` (tokenizers and both
alignment caches from a few conversations, as the `align` stage builds them from the distill split)."""

from __future__ import annotations

import pytest
from distill_world import build_alignment_world as build
from distill_world import distill_world


@pytest.fixture(scope="session")
def build_alignment_world():
    """:func:`distill_world.build_alignment_world`, for worlds of other sizes."""
    return build


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The world of the trainer tests (:func:`distill_world.distill_world`), built once."""
    return distill_world(tmp_path_factory.mktemp("distill_world"))
