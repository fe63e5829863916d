"""The training loop of every stage that trains (AR pretraining, BD3LM SFT, the teachers,
distillation): :class:`TrainConfig` (a ``train`` section of the config) and :func:`train`.

The objective is a ``Trainer`` subclass (:mod:`tide.training.trainers`,
:class:`tide.distill.trainer.DistillTrainer`); everything else (optimiser, schedule, checkpoints,
resume, logging) is the stock Trainer. Checkpoints go to a work directory
outside the workflow's declared outputs, so a killed run resumes from the last one; the final model
is written with ``save_pretrained`` beside a provenance record and the loss curve as CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from tide.config import fill_section
from tide.outputs import fresh_output_dir
from tide.provenance import write_record
from tide.training.curriculum import check_curriculum, curriculum_order
from tide.training.trainers import BD3LMTrainer, CausalLMTrainer, MaskSlotTrainer, OrderMixin

log = logging.getLogger(__name__)


def world_size() -> int:
    """Number of training processes: torch.distributed's when initialised, else ``WORLD_SIZE``
    (set by ``torchrun`` / ``accelerate launch``), else 1."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


# keys added for multi-GPU runs: left out of run records at their defaults, so that the records
# (run.json, provenance.json) of single-process runs stay as they were before these keys existed
SCALING_DEFAULTS = {"gradient_accumulation_steps": 1, "bf16": False}


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (one config section, e.g. ``students.ar.train``).

    Build it with :meth:`from_dict`: the fields have no defaults of their own, the defaults and
    bounds are those of ``workflow/schemas/train.schema.yaml``."""

    max_steps: int
    epochs: float | None  # when set: max_steps = ceil(epochs x batches per pass over the rows)
    batch_size: int  # per device (per process)
    gradient_accumulation_steps: int
    bf16: bool  # bf16 mixed precision (TrainingArguments.bf16)
    lr: float
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    max_length: int
    save_steps: int
    logging_steps: int
    seed: int
    group_by_length: bool
    loss_norm: str
    curriculum: list[dict]  # see tide.training.curriculum

    @classmethod
    def from_dict(cls, section: dict) -> TrainConfig:
        """The config of a ``train`` section (any subset of its keys): validated against and filled
        from the train schema (:class:`tide.config.ConfigError`, a ValueError, names a bad key),
        then checked across fields (epochs vs curriculum, curriculum ranges vs max_steps)."""
        cfg = cls(**fill_section("train.schema.yaml", section))
        if cfg.epochs is not None and cfg.curriculum:
            raise ValueError("epochs: a run with a curriculum states max_steps (its ranges are steps)")
        check_curriculum(cfg.curriculum, cfg.max_steps)
        return cfg

    def global_batch(self, processes: int | None = None) -> int:
        """Rows per optimizer step: batch_size x gradient_accumulation_steps x processes
        (default: :func:`world_size`)."""
        processes = world_size() if processes is None else processes
        return self.batch_size * self.gradient_accumulation_steps * processes

    def for_rows(self, n_rows: int, processes: int | None = None) -> TrainConfig:
        """This config with ``max_steps`` derived from ``epochs`` over ``n_rows`` rows (if set),
        counting :meth:`global_batch` rows per step."""
        if self.epochs is None:
            return self
        if n_rows < 1:
            raise ValueError("epochs: the training set is empty")
        steps = math.ceil(self.epochs * math.ceil(n_rows / self.global_batch(processes)))
        return dataclasses.replace(self, max_steps=max(1, steps))

    def record(self) -> dict:
        """The settings as recorded with a run (the scaling keys only where not at their default)."""
        return {k: v for k, v in vars(self).items()
                if k not in SCALING_DEFAULTS or v != SCALING_DEFAULTS[k]}

    def arguments(self, output_dir: Path) -> TrainingArguments:
        return TrainingArguments(
            output_dir=str(output_dir),
            max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            bf16=self.bf16,
            learning_rate=self.lr,
            lr_scheduler_type="cosine",
            warmup_steps=int(self.warmup_ratio * self.max_steps),
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            save_strategy="steps",
            save_steps=self.save_steps,
            logging_steps=self.logging_steps,
            seed=self.seed,
            data_seed=self.seed,
            use_cpu=not torch.cuda.is_available(),
            report_to=[],
            dataloader_num_workers=0,
            remove_unused_columns=False,
            train_sampling_strategy="group_by_length" if self.group_by_length else "random",
            disable_tqdm=False,
        )


class LossCSV(TrainerCallback):
    """Append each training log row (step, loss, lr, grad norm, loss terms) to a CSV: the loss curve.

    The header is fixed by the first row; trainers that log extra loss terms log them in every row.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs or not state.is_world_process_zero:
            return  # only training-step rows (the end-of-run summary has no "loss")
        row = {"step": state.global_step, **{k: v for k, v in logs.items() if _scalar(v)}}
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def _truncate_curve(path: Path, step: int) -> None:
    """Drop curve rows logged after ``step`` (the checkpoint a resumed run restarts from)."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if int(r["step"]) <= step)


def _scalar(v) -> bool:
    return isinstance(v, (int, float))


def model_fingerprint(model) -> str:
    """sha256 of a model's config and weights: what a run starts from."""
    digest = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())  # no copy
    return digest.hexdigest()


def data_fingerprint(rows) -> str:
    """sha256 of every field of every row, in order: the data a run trains on (token ids, labels,
    a distillation row's teacher ids and alignment), so that a changed world, tokenizer or
    alignment cache is not mistaken for the same run."""
    digest = hashlib.sha256()
    for row in rows:
        for key in sorted(row):
            digest.update(key.encode())
            try:
                digest.update(torch.as_tensor(row[key]).numpy().tobytes())
            except (TypeError, ValueError, RuntimeError):  # strings, ragged lists
                digest.update(json.dumps(row[key], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _check_resume_settings(work_dir: Path, last: str | None, settings: dict, write: bool = True) -> None:
    """Checkpoints resume only the run they were made by: the settings (hyperparameters, trainer,
    fingerprints of the data, the starting model and any other model the run reads) are kept in
    ``work_dir/run.json``; a resume with other ones, or of checkpoints without that record, is
    refused."""
    path = work_dir / "run.json"
    if last and not path.exists():
        raise ValueError(f"{work_dir} holds checkpoints ({Path(last).name}) but no {path.name} "
                         "recording the run that made them (an older tide wrote them); delete "
                         "that directory to start over")
    if last:
        before = json.loads(path.read_text())
        changed = sorted(k for k in before.keys() | settings.keys() if before.get(k) != settings.get(k))
        if changed:
            diff = ", ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise ValueError(f"{work_dir} holds checkpoints of a run with other settings ({diff}); "
                             f"delete that directory to start over, or {path.name} in it to resume "
                             "with the new settings")
    if write:  # the main process only, when there are several
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def _checkpoint_step(checkpoint: str) -> int:
    return int(Path(checkpoint).name.split("-")[-1])


def train(
    model,
    train_dataset,
    collator,
    cfg: TrainConfig,
    *,
    work_dir: Path,
    out_dir: Path,
    tokenizer=None,
    trainer_cls=Trainer,
    record: dict | None = None,
    callbacks: list | tuple = (),
    run_inputs: dict[str, str] | None = None,
    **trainer_kwargs,
):
    """Train (resuming from the last checkpoint in ``work_dir``), then ``save_pretrained`` to ``out_dir``.
    ``run_inputs``: fingerprints of other things the run reads (a distillation teacher), checked on
    resume like the hyperparameters."""
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    processes = world_size()
    cfg = cfg.for_rows(len(train_dataset), processes)
    if issubclass(trainer_cls, (BD3LMTrainer, CausalLMTrainer, MaskSlotTrainer)):
        trainer_kwargs["loss_norm"] = cfg.loss_norm
    elif cfg.loss_norm != "token":
        raise ValueError(f"loss_norm {cfg.loss_norm!r}: {trainer_cls.__name__} has its own "
                         "normalisation (only the baseline and teacher trainers take this key)")
    if cfg.curriculum:
        if not issubclass(trainer_cls, OrderMixin):
            raise ValueError(f"curriculum: {trainer_cls.__name__} takes none (only the baseline "
                             "and teacher trainers do)")
        trainer_kwargs["train_order"] = curriculum_order(
            [row.get("family") for row in train_dataset], [len(row["input_ids"]) for row in train_dataset],
            max_steps=cfg.max_steps, batch_size=cfg.global_batch(processes), curriculum=cfg.curriculum,
            seed=cfg.seed, group_by_length=cfg.group_by_length)
    work_dir.mkdir(parents=True, exist_ok=True)
    last = get_last_checkpoint(str(work_dir))
    # the processes split each step's rows and noise draws: a resume must use as many
    scaling = {"processes": processes} if processes > 1 else {}
    _check_resume_settings(work_dir, last, {**cfg.record(), **scaling, "rows": len(train_dataset),
                                            "data": data_fingerprint(train_dataset),
                                            "trainer": trainer_cls.__name__,
                                            "init": model_fingerprint(model), **(run_inputs or {})},
                           write=int(os.environ.get("RANK", "0")) == 0)
    trainer = trainer_cls(
        model=model,
        args=cfg.arguments(work_dir),
        train_dataset=train_dataset,
        data_collator=collator,
        callbacks=[LossCSV(work_dir / "loss.csv"), *callbacks],
        **trainer_kwargs,
    )
    done = last is not None and _checkpoint_step(last) >= cfg.max_steps
    if done:
        # the Trainer would take one more optimizer step when resumed from its final checkpoint
        log.info("already trained: loading %s", last)
        trainer._load_from_checkpoint(last)
    else:
        if last:
            log.info("resuming from %s", last)
            if trainer.is_world_process_zero():
                _truncate_curve(work_dir / "loss.csv", _checkpoint_step(last))
        trainer.train(resume_from_checkpoint=last)
    # several processes: gather the weights (FSDP shards them; every process must take part),
    # then only the main process writes
    state = trainer.accelerator.get_state_dict(trainer.model_wrapped) if processes > 1 else None
    if trainer.is_world_process_zero():
        fresh_output_dir(out_dir)
        trainer.model.save_pretrained(out_dir, **({"state_dict": state} if state is not None else {}))
        if tokenizer is not None:
            tokenizer.save_pretrained(out_dir)
        curve = work_dir / "loss.csv"
        if curve.exists():
            (out_dir / "loss.csv").write_text(curve.read_text())
        write_record(out_dir / "provenance.json", record, cfg.seed, train=cfg.record(), **scaling)
    if processes > 1:
        trainer.accelerator.wait_for_everyone()
    return trainer
