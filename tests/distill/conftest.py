"""Shared fixture of the distillation tests: tokenizers and both alignment caches built from a few
conversations, as the `align` stage builds them from the distill split."""

from __future__ import annotations

import json

import pytest

from tide.align import build_alignment_cache, load_alignment_cache
from tide.tokenization import load_tokenizer, train_tokenizers


@pytest.fixture(scope="session")
def build_alignment_world():
    """A function ``(out, conversations, repeat, max_student_len, max_teacher_len) -> (tokenizers,
    caches)``: the three tokenizers trained on the conversations' texts (``repeat`` times), loaded
    by role, and the alignment caches of Pipelines A and B, loaded, keyed ``"A"`` / ``"B"``."""

    def build(out, convs, repeat, max_student_len, max_teacher_len):
        texts = [m["content"] for c in convs for m in c] * repeat
        dirs = train_tokenizers(
            texts, out / "tok", {"student": {"vocab_size": 400}, "teacher_a": {"vocab_size": 420}}
        )
        source = out / "distill.jsonl"
        source.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs))
        caches = {}
        for name, teacher in (("A", "teacher_a"), ("B", "teacher_b")):
            path = out / f"align_{name}.safetensors"
            build_alignment_cache(name, dirs["student"], dirs[teacher], source, path,
                                  max_student_len=max_student_len,
                                  max_teacher_len=max_teacher_len, progress=False)
            caches[name] = load_alignment_cache(path)
        toks = {role: load_tokenizer(path) for role, path in dirs.items()}
        return toks, caches

    return build
