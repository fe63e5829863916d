"""Training recipes: the stages that make the baselines and teachers.

- ``train_ar``: AR pretraining of the student (Qwen3 causal LM) on pretrain text + SFT chats;
  the AR baseline row.
- ``convert_a2d`` + ``train_bd3lm_sft``: a2d conversion of the AR checkpoint, then BD3LM SFT; the
  BD3LM baseline row and the initialisation of every distilled student.
- ``train_teacher``: teacher-A (LLaDA2 MoE, own tokenizer) or teacher-B (WeDLM dense, shared
  vocabulary): AR phase, masked-diffusion phase on every split, diffusion SFT phase on the chats.

At paper scale a section names ``pretrained`` (a hub id or local directory) instead: the workflow
then prepares that checkpoint with :mod:`tide.checkpoints` (fetched, verified, saved), and these
recipes refuse to run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import Qwen3ForCausalLM

from tide.pipelines import TEACHER_TOKENIZER
from tide.tokenization import load_tokenizer, tokenizer_meta
from tide.training.data import BlockCollator, DataError, load_examples, read_jsonl
from tide.training.loop import TrainConfig, train
from tide.training.trainers import (
    BD3LMTrainer,
    CausalLMTrainer,
    ExpertBiasBalancer,
    MaskedDiffusionTrainer,
    MaskSlotTrainer,
)

log = logging.getLogger(__name__)


def split_examples(tokenizer, world_dir: Path, section: dict, max_length: int) -> list[dict]:
    """Tokenised rows of ``section['splits']``, concatenated (the Trainer shuffles by seed), each
    family repeated as ``section['family_repeats']`` says (both keys of every training section)."""
    splits, repeats = section["splits"], section["family_repeats"]
    files = [Path(world_dir) / "corpus" / f"{split}.jsonl" for split in splits]
    present = {row.get("family") for path in files for row in read_jsonl(path)}
    unknown = sorted(set(repeats) - present)
    if unknown:
        raise DataError(f"family_repeats names {unknown}, which no row of {'+'.join(splits)} has "
                        f"(families there: {sorted(f for f in present if f)})")
    rows: list[dict] = []
    for path in files:
        rows += load_examples(tokenizer, path, max_length, repeats=repeats)
    log.info("%d training rows from %s (repeats %s)", len(rows), "+".join(splits), repeats or "none")
    return rows


def _refuse_pretrained(section: dict, where: str) -> None:
    if section["pretrained"]:
        raise ValueError(f"{where}.pretrained is set ({section['pretrained']}): a released "
                         "checkpoint is prepared by `python -m tide prepare`, not trained")


def seeded_model(seed: int, build: Callable):
    """``build()`` under ``torch.manual_seed(seed)``: a from-scratch model's initial weights follow
    the run's seed (so a re-run starts from the same weights and may resume its checkpoints)."""
    torch.manual_seed(seed)
    return build()


def train_ar(section: dict, world_dir: Path, tokenizer_dir: Path, work_dir: Path, out_dir: Path,
             record: dict | None = None):
    """AR pretraining of the student on ``section['splits']``."""
    from tide.models.student import student_config

    _refuse_pretrained(section, "students.ar")
    tok = load_tokenizer(tokenizer_dir, role="student")
    cfg = TrainConfig.from_dict(section["train"])
    config = student_config(len(tok), tok.pad_token_id, tok.eos_token_id, a2d=False,
                            **section["model"])
    model = seeded_model(cfg.seed, lambda: Qwen3ForCausalLM(config))
    rows = split_examples(tok, world_dir, section, cfg.max_length)
    collator = BlockCollator(tok.pad_token_id, tok.eos_token_id, block_size=1)
    return train(model, rows, collator, cfg, work_dir=work_dir, out_dir=out_dir, tokenizer=tok,
                 trainer_cls=CausalLMTrainer, record=record)


def convert_a2d(ar_dir: Path, tokenizer_dir: Path, out_dir: Path, record: dict | None = None, *,
                right_shift_logits: bool = False):
    """AR checkpoint → BD3LM student checkpoint (same weights, no causal mask; bd3lm.md §1)."""
    from tide.models.student import a2d_convert
    from tide.provenance import write_record

    tok = load_tokenizer(tokenizer_dir, role="student")
    model = a2d_convert(ar_dir, out_dir, mask_id=tokenizer_meta(tok)["mask_token_id"],
                        right_shift_logits=right_shift_logits)
    tok.save_pretrained(out_dir)
    write_record(Path(out_dir) / "provenance.json", record, None, source=str(ar_dir))
    return model


def train_bd3lm_sft(section: dict, block_size: int, init_dir: Path, world_dir: Path,
                    tokenizer_dir: Path, work_dir: Path, out_dir: Path, record: dict | None = None):
    """BD3LM SFT of the a2d-converted student on ``section['splits']``."""
    from tide.models.loading import load_model

    _refuse_pretrained(section, "students.sft")
    model = load_model(init_dir, kind="student")  # a broken checkpoint fails here, naming the file
    model.train()
    tok = load_tokenizer(tokenizer_dir, role="student")
    meta = tokenizer_meta(tok)
    cfg = TrainConfig.from_dict(section["train"])
    rows = split_examples(tok, world_dir, section, cfg.max_length)
    collator = BlockCollator(tok.pad_token_id, tok.eos_token_id, block_size=block_size)
    return train(model, rows, collator, cfg, work_dir=work_dir, out_dir=out_dir, tokenizer=tok,
                 trainer_cls=BD3LMTrainer, record=record,
                 mask_id=meta["mask_token_id"], block_size=block_size)


def build_teacher(kind: str, tok, model_overrides: dict):
    """A freshly initialised tiny teacher of ``kind`` ('a': LLaDA2 MoE, 'b': WeDLM dense)."""
    from tide.models import configs
    from tide.models.llada2 import LLaDA2MoeModelLM
    from tide.models.wedlm import WeDLMForCausalLM

    meta = tokenizer_meta(tok)
    ids = {"pad_token_id": tok.pad_token_id, "mask_token_id": meta["mask_token_id"],
           "eos_token_id": tok.eos_token_id}
    if kind == "a":
        config = configs.llada2_tiny_world_config(len(tok), **ids)
        model_cls = LLaDA2MoeModelLM
    elif kind == "b":
        config = configs.wedlm_tiny_world_config(len(tok), **ids)
        model_cls = WeDLMForCausalLM
    else:
        raise ValueError(f"unknown teacher kind {kind!r} (expected 'a' or 'b')")
    unknown = sorted(k for k in model_overrides if not hasattr(config, k))
    if unknown:
        raise ValueError(f"teachers.{kind}.model: unknown model config key(s) {unknown}")
    fields = {k: v for k, v in config.to_dict().items()
              if k not in ("model_type", "transformers_version", "architectures")}
    if "num_hidden_layers" in model_overrides:
        fields.pop("layer_types", None)  # derived from the layer count
    config = type(config)(**{**fields, **model_overrides})
    config._attn_implementation = "sdpa"
    return model_cls(config)


def train_teacher(kind: str, section: dict, block_size: int, world_dir: Path, tokenizer_dir: Path,
                  work_dir: Path, out_dir: Path, record: dict | None = None):
    """Prepare teacher ``kind`` as the real ones were made: an AR phase (``section['ar']``:
    next-token prediction, or ``objective: mask_slot``, its no-shift form), the masked-diffusion
    phase (``section['train']``) from its weights, then a diffusion SFT phase on chats
    (``section['sft']``; the released teachers are instruct models). ``right_shift_logits``: the
    diffusion phases score position i with output i - 1, keeping the AR phase's output mapping.
    Each phase resumes from its own checkpoints under ``work_dir`` and hands its weights on."""
    _refuse_pretrained(section, f"teachers.{kind}")
    work_dir = Path(work_dir)
    tok = load_tokenizer(tokenizer_dir, role=TEACHER_TOKENIZER[kind])
    meta = tokenizer_meta(tok)
    ar = section["ar"]
    first = ar if ar["enabled"] else section  # the first phase's seed sets the initial weights
    model = seeded_model(TrainConfig.from_dict(first["train"]).seed,
                         lambda: build_teacher(kind, tok, section["model"]))
    rate = section["expert_bias_rate"]
    balance = [ExpertBiasBalancer(rate)] if rate > 0 else []
    balance_run = {"expert_bias_rate": rate}  # recorded with each phase: a resume must not change it
    if ar["enabled"]:
        ar_cfg = TrainConfig.from_dict(ar["train"])
        ar_rows = split_examples(tok, world_dir, {"splits": section["splits"], **ar}, ar_cfg.max_length)
        if ar["objective"] == "mask_slot":  # the schema's enum: next_token or mask_slot
            ar_trainer = {"trainer_cls": MaskSlotTrainer, "mask_id": meta["mask_token_id"]}
        else:
            ar_trainer = {"trainer_cls": CausalLMTrainer}
        train(model, ar_rows, BlockCollator(tok.pad_token_id, tok.eos_token_id), ar_cfg,
              work_dir=work_dir / "ar", out_dir=work_dir / "ar-final", record=record,
              callbacks=balance, run_inputs=balance_run, **ar_trainer)
    sft = section["sft"]
    # stored in config.json: every sampler and the distillation read the teacher's output mapping
    model.config.right_shift_logits = bool(section["right_shift_logits"])
    diffusion = {"mask_id": meta["mask_token_id"], "block_size": block_size,
                 "full_attention_prob": section["full_attention_prob"]}
    diffusion_run = {**balance_run, **diffusion, "right_shift_logits":
                     model.config.right_shift_logits}
    collator = BlockCollator(tok.pad_token_id, tok.eos_token_id, block_size=block_size)
    phases = [("diffusion", section)] + ([("sft", sft)] if sft["enabled"] else [])
    for i, (name, phase) in enumerate(phases):
        cfg = TrainConfig.from_dict(phase["train"])
        rows = split_examples(tok, world_dir, phase, cfg.max_length)
        last = i == len(phases) - 1
        trainer = train(model, rows, collator, cfg, work_dir=work_dir / name,
                        out_dir=out_dir if last else work_dir / f"{name}-final",
                        tokenizer=tok if last else None, trainer_cls=MaskedDiffusionTrainer,
                        record=record, callbacks=balance, run_inputs=diffusion_run,
                        **diffusion)
    return trainer
