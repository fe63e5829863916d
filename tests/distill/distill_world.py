"""The small distillation world of the trainer tests (a helper module imported by name, not a
conftest): a handful of conversations, the three tokenizers trained on them, both pipelines'
alignment caches and collators, and unit-size students and teachers."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from tide.align import build_alignment_cache, load_alignment_cache
from tide.distill.batches import DistillCollator, DistillDataset
from tide.models.configs import llada2_unit_config, wedlm_unit_config
from tide.models.llada2 import LLaDA2MoeModelLM
from tide.models.student import A2DQwen3LMHeadModel, student_config
from tide.models.wedlm import WeDLMForCausalLM
from tide.pipelines import PIPELINES
from tide.tokenization import load_tokenizer, tokenizer_meta, train_tokenizers

BLOCK = 8
WORDS = [
    "apple", "river", "castle", "engine", "garden", "lantern", "violin", "golden", "quiet",
    "answer", "library",
]  # fmt: skip


def conversations(n: int = 8, seed: int = 1) -> list[list[dict]]:
    """``n`` chats (every other one with a system message): a short question, a longer answer."""
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + f" {rng.randrange(999)}."

    return [
        ([{"role": "system", "content": "Answer briefly."}] if i % 2 else [])
        + [{"role": "user", "content": text(4)}, {"role": "assistant", "content": text(10)}]
        for i in range(n)
    ]


def build_alignment_world(out: Path, convs, repeat: int, max_student_len: int,
                          max_teacher_len: int):
    """``(tokenizers, caches)``: the three tokenizers trained on the conversations' texts
    (``repeat`` times), loaded by role, and both pipelines' alignment caches, loaded, keyed by
    pipeline name."""
    texts = [m["content"] for c in convs for m in c] * repeat
    dirs = train_tokenizers(
        texts, out / "tok", {"student": {"vocab_size": 400}, "teacher_a": {"vocab_size": 420}}
    )
    source = out / "distill.jsonl"
    source.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs))
    caches = {}
    for name, pipeline in PIPELINES.items():
        path = out / f"align_{name}.safetensors"
        build_alignment_cache(name, dirs["student"], dirs[pipeline.tokenizer], source, path,
                              max_student_len=max_student_len, max_teacher_len=max_teacher_len,
                              progress=False)
        caches[name] = load_alignment_cache(path)
    toks = {role: load_tokenizer(path) for role, path in dirs.items()}
    return toks, caches


def distill_world(out: Path) -> SimpleNamespace:
    """Tokenizers, datasets and collators (block ``BLOCK``) of both pipelines on
    :func:`conversations`, the student's mask id and the shared vocabulary size."""
    toks, caches = build_alignment_world(out, conversations(), repeat=5, max_student_len=64,
                                         max_teacher_len=96)
    s = toks["student"]
    w = SimpleNamespace(toks=toks, data={}, collator={}, student_mask=s.mask_token_id,
                        shared_vocab=tokenizer_meta(toks["teacher_b"])["shared_vocab_size"])
    for name, pipeline in PIPELINES.items():
        w.data[name] = DistillDataset(caches[name])
        t = toks[pipeline.tokenizer]
        w.collator[name] = DistillCollator(name, s.pad_token_id, s.eos_token_id, t.pad_token_id,
                                           BLOCK, teacher_eos_id=t.eos_token_id)
    return w


def teacher_tok(world, pipeline: str):
    return world.toks[PIPELINES[pipeline].tokenizer]


def make_student(world, seed: int = 0, shift: bool = False) -> A2DQwen3LMHeadModel:
    """A unit-size a2d student (``shift``: its config's ``right_shift_logits``)."""
    torch.manual_seed(seed)
    s = world.toks["student"]
    model = A2DQwen3LMHeadModel(
        student_config(len(s), s.pad_token_id, s.eos_token_id, size="unit", a2d=True)
    )
    model.config.right_shift_logits = shift
    return model


def make_teacher(world, pipeline: str, seed: int = 1, shift: bool = False) -> nn.Module:
    """A unit-size teacher of ``pipeline`` (LLaDA2-MoE or WeDLM), SDPA attention, eval mode."""
    torch.manual_seed(seed)
    t = teacher_tok(world, pipeline)
    ids = {"pad_token_id": t.pad_token_id, "mask_token_id": t.mask_token_id,
           "eos_token_id": t.eos_token_id}
    if PIPELINES[pipeline].chunk_level:
        config, cls = llada2_unit_config(len(t), **ids), LLaDA2MoeModelLM
    else:
        config, cls = wedlm_unit_config(len(t), **ids), WeDLMForCausalLM
    config._attn_implementation = "sdpa"
    model = cls(config).eval()
    model.config.right_shift_logits = shift
    return model
