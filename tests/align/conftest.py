"""Fixtures of the alignment tests: three small tokenizers trained on the synthetic corpus of
:mod:`conversations`."""

from __future__ import annotations

import pytest
import torch
from conversations import synthetic_corpus

from tide.tokenization import load_tokenizer, train_tokenizers

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory):
    out = tmp_path_factory.mktemp("align_tokenizers")
    return train_tokenizers(
        synthetic_corpus(), out, {"student": {"vocab_size": 400}, "teacher_a": {"vocab_size": 420}}
    )


@pytest.fixture(scope="session")
def toks(tokenizer_dirs):
    """``{"student", "teacher_a", "teacher_b"}`` loaded tokenizers."""
    return {role: load_tokenizer(path) for role, path in tokenizer_dirs.items()}
