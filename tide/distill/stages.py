"""Distillation stages: the alignment cache (once per pipeline), one distillation run, and the
teacher signal of one model.

``align``: the distill split tokenised by student and teacher, aligned (Pipeline A: byte-aligned
chunks; Pipeline B: position pairs across the two chat templates), cached in one file.
``distill``: the BD3LM student (``students/bd3lm``) trained with CE + the variant's objective
against a frozen teacher, resumable, with the curve of every loss term.
``signal``: a model's KL to the pipeline's teacher, gold NLL and top-1 on the probe rows
(:mod:`tide.distill.signal`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tide.distill.objectives import Objective
from tide.outputs import replace_text
from tide.tokenization import load_tokenizer, tokenizer_meta
from tide.training.loop import TrainConfig, model_fingerprint, train

log = logging.getLogger(__name__)


def build_alignment(pipeline: str, section: dict, student_tok: Path, teacher_tok: Path,
                    distill_jsonl: Path, out_path: Path) -> dict:
    """Align every conversation of the distill split once and cache it (``section`` = ``distill``)."""
    from tide.align import build_alignment_cache

    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    return build_alignment_cache(
        pipeline, student_tok, teacher_tok, distill_jsonl, out_path,
        max_student_len=section["max_student_len"], max_teacher_len=section["max_teacher_len"],
    )


def distill(pipeline: str, obj: Objective, seed: int, section: dict, block_size: int, *,
            init_dir: Path, teacher_dir: Path, cache_path: Path, student_tok: Path,
            teacher_tok: Path, work_dir: Path, out_dir: Path, record: dict | None = None):
    """Train one distilled student; returns the Trainer. ``section`` = ``distill``: its ``train``
    and ``lean_losses`` (the memory-lean losses, :mod:`tide.lean_losses`; absent = off)."""
    from tide.align import load_alignment_cache
    from tide.distill.batches import DistillCollator, DistillDataset
    from tide.distill.trainer import DistillTrainer
    from tide.models.loading import load_model

    student = load_model(init_dir, kind="student")  # broken checkpoints fail here, naming the file
    student.train()
    teacher = load_model(teacher_dir) if obj.uses_teacher else None
    s_tok, t_tok = load_tokenizer(student_tok), load_tokenizer(teacher_tok)
    s_meta, t_meta = tokenizer_meta(s_tok), tokenizer_meta(t_tok)
    cache = load_alignment_cache(cache_path)
    collator = DistillCollator(pipeline, s_tok.pad_token_id, s_tok.eos_token_id,
                               t_tok.pad_token_id, block_size, teacher_eos_id=t_tok.eos_token_id)
    cfg = TrainConfig.from_dict({**section["train"], "seed": seed})
    return train(
        student, DistillDataset(cache), collator, cfg, work_dir=work_dir, out_dir=out_dir,
        tokenizer=s_tok, trainer_cls=DistillTrainer, record=record,
        run_inputs={"teacher": model_fingerprint(teacher)} if teacher is not None else None,
        teacher=teacher, objective=obj, pipeline=pipeline,
        student_mask_id=s_meta["mask_token_id"], teacher_mask_id=t_meta["mask_token_id"],
        block_size=block_size, shared_vocab=s_meta.get("shared_vocab_size"),
        lean_losses=bool(section["lean_losses"]),
    )


def measure_signal(pipeline: str, model_dir: Path, teacher_dir: Path, cache_path: Path, *,
                   student_tok: Path, teacher_tok: Path, block_size: int, section: dict,
                   out_path: Path, record: dict) -> dict:
    """The teacher signal of the model in ``model_dir`` (the teacher itself when it is
    ``teacher_dir``) on the probe rows of ``cache_path``; ``section`` = ``distill.signal``.
    Writes ``out_path`` (JSON: the measures and the provenance record) and returns the measures."""
    from tide.align import load_alignment_cache
    from tide.distill.batches import DistillCollator
    from tide.distill.signal import teacher_signal
    from tide.models.loading import load_model
    from tide.provenance import record as provenance

    is_teacher = Path(model_dir).resolve() == Path(teacher_dir).resolve()
    teacher = load_model(teacher_dir)
    model = teacher if is_teacher else load_model(model_dir, kind="student")
    s_tok, t_tok = load_tokenizer(student_tok), load_tokenizer(teacher_tok)
    s_meta, t_meta = tokenizer_meta(s_tok), tokenizer_meta(t_tok)
    collator = DistillCollator(pipeline, s_tok.pad_token_id, s_tok.eos_token_id,
                               t_tok.pad_token_id, block_size, teacher_eos_id=t_tok.eos_token_id)
    rows = load_alignment_cache(cache_path)
    measures = teacher_signal(
        pipeline, model, teacher, rows, collator, student_mask_id=s_meta["mask_token_id"],
        teacher_mask_id=t_meta["mask_token_id"], block_size=block_size,
        shared_vocab=s_meta.get("shared_vocab_size"), seed=section["seed"],
        draws=section["draws"], batch_size=section["batch_size"])
    result = {"pipeline": pipeline, "model": str(model_dir), "teacher": str(teacher_dir),
              "is_teacher": is_teacher, "rows": len(rows), **measures,
              "provenance": provenance(record, section["seed"],
                                       model=model_fingerprint(model),
                                       teacher_model=model_fingerprint(teacher))}
    replace_text(out_path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    return measures
