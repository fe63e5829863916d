"""Training on the HF Trainer: AR pretraining, BD3LM SFT, teacher training.

One ``Trainer`` subclass per objective, each only computing its loss; everything else (optimiser,
schedule, checkpoints, resume, logging) is the stock Trainer. Checkpoints go to a work directory
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
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import get_last_checkpoint

from tide import diffusion
from tide.config import fill_section
from tide.curriculum import FixedOrderSampler, check_curriculum, curriculum_order
from tide.losses import causal_lm_ce
from tide.outputs import fresh_output_dir
from tide.provenance import write_record

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
    curriculum: list[dict]  # see tide.curriculum

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


class GlobalBatchMixin:
    """For our trainers: a row order that depends on the global batch only, not on how it is split
    over processes and accumulation steps.

    accelerate shards the batches of the (one, shared) sampler round-robin: process ``p`` of ``W``
    gets batches ``p, p+W, ...``, so optimizer step ``s`` reads batches ``s*W*GA ... (s+1)*W*GA - 1``
    of that sequence, as a single process with ``W*GA`` accumulation steps does. The stock
    length-grouped sampler groups by ``batch_size x GA`` (not x W); here it groups by the global
    batch, which is the stock sampler itself in a single process. Its permutation comes from the
    global torch RNG, seeded alike in every process by the Trainer. (At an epoch's end the two
    differ when the batches per epoch are not a multiple of W x GA: accelerate pads the last round.)
    """

    def _get_train_sampler(self, train_dataset=None):
        train_dataset = self.train_dataset if train_dataset is None else train_dataset
        processes = self.args.world_size
        if processes > 1 and self.args.train_sampling_strategy == "group_by_length" \
                and train_dataset is not None:
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps * processes,
                dataset=train_dataset)
        return super()._get_train_sampler(train_dataset)


class OrderMixin(GlobalBatchMixin):
    """For our trainers: draw rows in a precomputed order when given one (a curriculum; built for
    the global batch by :func:`train`, so it shards like the length-grouped order)."""

    def __init__(self, *args, train_order: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_order = train_order

    def _get_train_sampler(self, train_dataset=None):
        if self.train_order is not None:
            return FixedOrderSampler(self.train_order)
        return super()._get_train_sampler(train_dataset)


def noise_seed(seed: int, step: int, micro: int) -> int:
    """Seed of the noise of micro-batch ``micro`` (1-based, global over processes) of ``step``."""
    return (seed * 1_000_003 + step * 1009 + micro) % (2**63)


class NoiseMixin(GlobalBatchMixin):
    """For our diffusion trainers: a noise generator seeded from (seed, global step, micro-batch), so
    resumed runs redraw the same noise; and losses that are per-micro-batch means.

    The micro-batch index is global: process ``p``'s ``k``-th micro-batch (``k`` = 1..GA) of a step
    is ``p * GA + k``, so ``W`` processes with GA accumulation steps draw the noise of one process
    with ``W * GA`` steps on the same batches (:class:`GlobalBatchMixin`); process 0 draws what a
    single process always drew."""

    # The loss ignores ``num_items_in_batch``: let the Trainer divide it by the gradient-accumulation
    # steps (its default would skip that for models whose forward takes ``**kwargs``, like Qwen3).
    # Under DDP the gradients are then averaged over processes: the same mean over micro-batches.
    loss_is_scaled_for_ga = False

    def noise_generator(self) -> torch.Generator:
        step = self.state.global_step
        if getattr(self, "_noise_step", None) != step:
            self._noise_step, self._micro = step, 0
        self._micro += 1
        micro = self.args.process_index * self.args.gradient_accumulation_steps + self._micro
        return torch.Generator().manual_seed(noise_seed(self.args.seed, step, micro))


class BD3LMTrainer(OrderMixin, NoiseMixin, Trainer):
    """BD3LM objective (bd3lm.md §2) on ``[xt ; x0]`` with the block-diffusion mask;
    ``loss_norm``: token / sequence / batch (:func:`tide.losses.bd3lm_ce`)."""

    def __init__(self, *args, mask_id: int, block_size: int, loss_norm: str = "token", **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_id, self.block_size, self.loss_norm = mask_id, block_size, loss_norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        gen = self.noise_generator()
        x0 = inputs["input_ids"]
        loss, aux = diffusion.bd3lm_loss(
            model, x0, inputs["labels"], mask_id=self.mask_id, block_size=self.block_size,
            generator=gen, norm=self.loss_norm,
        )
        return (loss, aux) if return_outputs else loss


class CausalLMTrainer(OrderMixin, Trainer):
    """Next-token objective for any of our architectures, through an explicit causal 4-D mask.

    The teachers' classes are bidirectional by default (LLaDA2) or take masks as given, so the AR
    phase of teacher preparation passes the causal mask itself and shifts the labels here.
    ``loss_norm``: token (the HF loss) / sequence / batch (:func:`tide.losses.causal_lm_ce`).
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, loss_norm: str = "token", **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_norm = loss_norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids, labels = inputs["input_ids"], inputs["labels"]
        length = ids.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()
        logits = model(input_ids=ids, attention_mask=causal[None, None]).logits
        loss = causal_lm_ce(logits, labels, norm=self.loss_norm)
        return (loss, {"logits": logits}) if return_outputs else loss


class MaskSlotTrainer(OrderMixin, Trainer):
    """No-shift next-token objective (:func:`tide.diffusion.mask_slot_loss`): the teachers' first
    phase when ``teachers.<k>.ar.objective`` is ``mask_slot``. ``loss_norm`` as for the others."""

    loss_is_scaled_for_ga = False

    def __init__(self, *args, mask_id: int, loss_norm: str = "token", **kwargs):
        super().__init__(*args, **kwargs)
        self.mask_id, self.loss_norm = mask_id, loss_norm

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, aux = diffusion.mask_slot_loss(model, inputs["input_ids"], inputs["labels"],
                                             mask_id=self.mask_id, norm=self.loss_norm)
        return (loss, aux) if return_outputs else loss


class MaskedDiffusionTrainer(BD3LMTrainer):
    """Teacher objective: BD3LM, or with probability ``full_attention_prob`` per batch the MDLM
    objective with full bidirectional attention (how Pipeline A queries its teacher)."""

    def __init__(self, *args, full_attention_prob: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.full_attention_prob = full_attention_prob

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        gen = self.noise_generator()
        if torch.rand((), generator=gen).item() >= self.full_attention_prob:
            loss, aux = diffusion.bd3lm_loss(
                model, inputs["input_ids"], inputs["labels"], mask_id=self.mask_id,
                block_size=self.block_size, generator=gen, norm=self.loss_norm,
            )
        else:
            loss, aux = diffusion.masked_diffusion_loss(
                model, inputs["input_ids"], inputs["labels"], mask_id=self.mask_id, generator=gen,
                norm=self.loss_norm,
            )
        return (loss, aux) if return_outputs else loss


class ExpertBiasBalancer(TrainerCallback):
    """After every optimizer step, let each MoE router of the model update its expert bias from the
    load it saw (``update_expert_bias(rate)``, auxiliary-loss-free balancing)."""

    def __init__(self, rate: float):
        self.rate = rate

    def on_step_end(self, args, state, control, model=None, **kwargs):
        for module in model.modules():
            if hasattr(module, "update_expert_bias"):
                module.update_expert_bias(self.rate)


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
