"""Training recipes: the stages that make the baselines and teachers.

- ``train_ar``: AR pretraining of the student (Qwen3 causal LM) on pretrain text + SFT chats;
  the AR baseline row.
- ``convert_a2d`` + ``train_bd3lm_sft``: a2d conversion of the AR checkpoint, then BD3LM SFT; the
  BD3LM baseline row and the initialisation of every distilled student.
- ``train_teacher``: teacher-A (LLaDA2 MoE, own tokenizer) or teacher-B (WeDLM dense, shared
  vocabulary) trained with the masked-diffusion objective on every split.

At paper scale a section may name ``pretrained`` (a hub id or local directory): the stage then
loads and re-saves that checkpoint (with a load check) instead of training, so the DAG is the same.
"""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import Qwen3ForCausalLM, Trainer

from tide.data import BlockCollator, load_examples
from tide.pipelines import TEACHER_TOKENIZER
from tide.tokenization import load_tokenizer, tokenizer_meta
from tide.training import (
    BD3LMTrainer,
    CausalLMTrainer,
    ExpertBiasBalancer,
    MaskedDiffusionTrainer,
    TrainConfig,
    train,
)

log = logging.getLogger(__name__)


def split_examples(tokenizer, world_dir: Path, splits: list[str], max_length: int) -> list[dict]:
    """Tokenised rows of the named corpus splits, concatenated (the Trainer shuffles by seed)."""
    rows: list[dict] = []
    for split in splits:
        rows += load_examples(tokenizer, Path(world_dir) / "corpus" / f"{split}.jsonl", max_length)
    log.info("%d training rows from %s", len(rows), "+".join(splits))
    return rows


def _copy_pretrained(source: str, out_dir: Path, kind: str, tokenizer_src: str | None = None):
    """Paper scale: load a released checkpoint (clear errors if broken) and re-save it locally."""
    from tide.models.loading import load_model

    model = load_model(source, kind=kind)
    model.save_pretrained(out_dir)
    load_tokenizer(tokenizer_src or source).save_pretrained(out_dir)
    return model


def train_ar(section: dict, world_dir: Path, tokenizer_dir: Path, work_dir: Path, out_dir: Path,
             record: dict | None = None):
    """AR pretraining of the student on ``section['splits']``."""
    from tide.models.student import student_config

    if section.get("pretrained"):
        return _copy_pretrained(section["pretrained"], out_dir, kind="qwen3")
    tok = load_tokenizer(tokenizer_dir)
    cfg = TrainConfig.from_dict(section["train"])
    config = student_config(len(tok), tok.pad_token_id, tok.eos_token_id, a2d=False,
                            **section.get("model", {}))
    model = Qwen3ForCausalLM(config)
    rows = split_examples(tok, world_dir, section["splits"], cfg.max_length)
    collator = BlockCollator(tok.pad_token_id, tok.eos_token_id, block_size=1)
    return train(model, rows, collator, cfg, work_dir=work_dir, out_dir=out_dir, tokenizer=tok,
                 trainer_cls=Trainer, record=record)


def convert_a2d(ar_dir: Path, tokenizer_dir: Path, out_dir: Path, record: dict | None = None):
    """AR checkpoint → BD3LM student checkpoint (same weights, no causal mask; bd3lm.md §1)."""
    from tide.models.student import a2d_convert
    from tide.provenance import write_record

    tok = load_tokenizer(tokenizer_dir)
    model = a2d_convert(ar_dir, out_dir, mask_id=tokenizer_meta(tok)["mask_token_id"])
    tok.save_pretrained(out_dir)
    write_record(Path(out_dir) / "provenance.json", record, None, source=str(ar_dir))
    return model


def train_bd3lm_sft(section: dict, block_size: int, init_dir: Path, world_dir: Path,
                    tokenizer_dir: Path, work_dir: Path, out_dir: Path, record: dict | None = None):
    """BD3LM SFT of the a2d-converted student on ``section['splits']``."""
    from tide.models.loading import load_model

    if section.get("pretrained"):
        return _copy_pretrained(section["pretrained"], out_dir, kind="student")
    model = load_model(init_dir, kind="student")  # a broken checkpoint fails here, naming the file
    model.train()
    tok = load_tokenizer(tokenizer_dir)
    meta = tokenizer_meta(tok)
    cfg = TrainConfig.from_dict(section["train"])
    rows = split_examples(tok, world_dir, section["splits"], cfg.max_length)
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
    """Prepare teacher ``kind`` as the real ones were made: an AR phase (next-token prediction,
    ``section['ar']``), then the masked-diffusion phase (``section['train']``) from its weights.
    Both phases resume from their own checkpoints under ``work_dir``."""
    if section.get("pretrained"):
        return _copy_pretrained(section["pretrained"], out_dir, kind=TEACHER_TOKENIZER[kind])
    tok = load_tokenizer(tokenizer_dir)
    meta = tokenizer_meta(tok)
    model = build_teacher(kind, tok, section.get("model", {}))
    rate = section.get("expert_bias_rate", 0.0)
    balance = [ExpertBiasBalancer(rate)] if rate > 0 else []
    ar = section.get("ar") or {}
    if ar.get("enabled"):
        ar_cfg = TrainConfig.from_dict(ar["train"])
        ar_rows = split_examples(tok, world_dir, ar.get("splits", section["splits"]), ar_cfg.max_length)
        ar_dir = Path(work_dir) / "ar-final"
        train(model, ar_rows, BlockCollator(tok.pad_token_id, tok.eos_token_id), ar_cfg,
              work_dir=Path(work_dir) / "ar", out_dir=ar_dir, trainer_cls=CausalLMTrainer,
              record=record, callbacks=balance)
    cfg = TrainConfig.from_dict(section["train"])
    rows = split_examples(tok, world_dir, section["splits"], cfg.max_length)
    collator = BlockCollator(tok.pad_token_id, tok.eos_token_id, block_size=block_size)
    return train(model, rows, collator, cfg, work_dir=Path(work_dir) / "diffusion", out_dir=out_dir,
                 tokenizer=tok,
                 trainer_cls=MaskedDiffusionTrainer, record=record, callbacks=balance,
                 mask_id=meta["mask_token_id"], block_size=block_size,
                 full_attention_prob=section.get("full_attention_prob", 0.0))
