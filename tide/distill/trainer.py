"""The distillation trainer: an HF Trainer subclass that only selects and combines losses.

Every step: BD3LM noise on the student (§b), the student forward on ``[xt ; x0]``, the CE term, and,
unless the objective is ``none``, one or two (CompDemo) teacher forwards under ``no_grad`` in the
teacher's own token space, mask id and attention pattern, followed by the objective of
:mod:`tide.distill.objectives` — token level for Pipeline B (through the position alignment),
chunk level for Pipeline A (through the byte-aligned chunks). Batches come from
:mod:`tide.distill.data`.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from transformers import Trainer

from tide import diffusion, losses
from tide.align import chunk_consistent_mask
from tide.distill.compdemo import (
    compdemo_combine,
    compdemo_split,
    compdemo_split_chunks,
    expand_chunks,
)
from tide.distill.objectives import Objective
from tide.training import NoiseMixin


def teacher_block_mask(valid: torch.Tensor, block_size: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive ``[B,1,2L_T,2L_T]`` mask for a teacher on ``[y0 ; yt]`` (method.md c.6 step 3):
    the BD3LM rule, clean half first, plus pad rows and columns of both halves set to ``finfo.min``."""
    length = valid.shape[1]
    allowed = diffusion.block_diffusion_mask(length, block_size, clean_first=True).to(valid.device)
    both = torch.cat([valid, valid], dim=1)
    allowed = allowed[None] & both[:, :, None] & both[:, None, :]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=valid.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def _check_setup(teacher, objective: Objective, pipeline: str, shared_vocab: int | None) -> None:
    """Refuse a trainer whose pipeline, objective, teacher and vocabulary do not fit together."""
    if pipeline not in ("cross", "shared"):
        raise ValueError(f"unknown pipeline {pipeline!r} (expected 'cross' or 'shared')")
    if objective.uses_teacher:
        if objective.chunk_level != (pipeline == "cross"):
            raise ValueError(f"objective kind {objective.kind!r} does not fit pipeline {pipeline!r}")
        if teacher is None:
            raise ValueError(f"objective kind {objective.kind!r} needs a teacher model")
        if pipeline == "shared" and shared_vocab is None:
            raise ValueError("pipeline 'shared' needs shared_vocab (the identical id prefix)")


def teacher_scores(teacher, logits: torch.Tensor) -> torch.Tensor:
    """Teacher logits ``[B, L_T, V]`` scoring position ``i`` (a tiny teacher may shift them)."""
    return diffusion.shift_logits_right(logits) if diffusion.uses_right_shift(teacher) else logits


def _weights_dtype(model) -> torch.dtype:
    """Dtype of a model's weights: SDPA needs an additive mask of the query dtype."""
    param = next(model.parameters(), None)
    return param.dtype if param is not None and param.is_floating_point() else torch.float32


@torch.no_grad()
def teacher_token_logits(teacher, y0: torch.Tensor, valid: torch.Tensor, teacher_masked: torch.Tensor,
                         mask_id: int, block_size: int) -> torch.Tensor:
    """Pipeline B: float32 teacher logits ``[B, L_T, V]`` of the noisy half of ``[y0 ; yt]``
    (``yt`` = ``y0`` with ``teacher_masked`` set to ``mask_id``; ``valid [B, L_T]`` bool)."""
    yt = torch.where(teacher_masked, torch.full_like(y0, mask_id), y0)
    length = y0.shape[1]
    pos = torch.arange(length, device=y0.device).repeat(2)[None].expand(y0.shape[0], -1)
    mask = teacher_block_mask(valid, block_size, _weights_dtype(teacher))
    out = teacher(input_ids=torch.cat([y0, yt], 1), position_ids=pos, attention_mask=mask)
    return teacher_scores(teacher, out.logits[:, length:]).float()


def propagate_to_teacher(student_sel: torch.Tensor, inputs: dict) -> torch.Tensor:
    """Pipeline B: teacher positions ``[B, L_T]`` whose aligned student position is selected in
    ``student_sel [B, L]`` (method.md c.6 step 2)."""
    sel = torch.zeros_like(inputs["teacher_ids"], dtype=torch.bool)
    src = torch.gather(student_sel, 1, inputs["align_student"]) & inputs["align_valid"]
    rows = torch.arange(sel.shape[0], device=sel.device)[:, None].expand_as(src)
    sel[rows[src], inputs["align_teacher"][src]] = True
    return sel


@torch.no_grad()
def teacher_full_logits(teacher, y0: torch.Tensor, attention: torch.Tensor,
                        teacher_masked: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Pipeline A: float32 teacher logits ``[B, L_T, V]``, full bidirectional attention over ``y0``
    with ``teacher_masked`` set to ``mask_id``, pads hidden (§d)."""
    yt = torch.where(teacher_masked, torch.full_like(y0, mask_id), y0)
    return teacher_scores(teacher, teacher(input_ids=yt, attention_mask=attention).logits).float()


def teacher_token_logprob(teacher, y0: torch.Tensor, attention: torch.Tensor,
                          teacher_masked: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Pipeline A: teacher log p(y0) per token ``[B, L_T]`` (:func:`teacher_full_logits`)."""
    return losses.token_logprob(teacher_full_logits(teacher, y0, attention, teacher_masked, mask_id), y0)


class DistillTrainer(NoiseMixin, Trainer):
    """CE + one distillation term; ``pipeline`` is ``cross`` (chunk level) or ``shared`` (token level)."""

    def __init__(self, *args, teacher, objective: Objective, pipeline: str, student_mask_id: int,
                 teacher_mask_id: int, block_size: int, shared_vocab: int | None = None, **kwargs):
        _check_setup(teacher, objective, pipeline, shared_vocab)
        super().__init__(*args, **kwargs)
        if teacher is not None:
            teacher = teacher.eval().requires_grad_(False)
            if getattr(teacher, "hf_device_map", None) is None:  # not sharded by accelerate
                teacher = teacher.to(self.args.device)
        self.teacher = teacher
        self.objective, self.pipeline = objective, pipeline
        self.student_mask_id, self.teacher_mask_id = student_mask_id, teacher_mask_id
        self.block_size, self.shared_vocab = block_size, shared_vocab
        self._terms: dict[str, list[float]] = defaultdict(list)

    # --- the step ----------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        gen = self.noise_generator()
        x0, labels = inputs["input_ids"], inputs["labels"]
        maskable = labels != diffusion.IGNORE_INDEX
        t = diffusion.sample_timesteps(x0.shape[0], gen).to(x0.device)
        masked = diffusion.sample_mask(maskable, t, gen)
        chunk = self.pipeline == "cross"
        if chunk:
            masked, teacher_masked, active, has_masked = chunk_consistent_mask(
                masked, inputs["A_S"], inputs["A_T"], labels)
        xt = diffusion.noise(x0, masked, self.student_mask_id)
        logits = diffusion.student_logits(model, xt, x0, self.block_size)
        ce = losses.bd3lm_ce(logits, x0, masked, maskable, t)
        kd = torch.zeros((), device=ce.device)
        if self.objective.uses_teacher:
            if chunk:
                kd = self._chunk_term(logits, inputs, t, teacher_masked, active, has_masked, gen)
            else:
                kd = self._token_term(logits, inputs, t, masked, gen)
        loss = ce + self.objective.weight * kd
        self._terms["ce"].append(ce.item())
        self._terms["kd"].append(kd.item())
        self._terms["progress"].append(self._progress())  # the P this step used (TIDAL)
        return (loss, {"logits": logits}) if return_outputs else loss

    def _progress(self) -> float:
        return min(1.0, self.state.global_step / max(self.state.max_steps, 1))

    def _lambda(self, t: torch.Tensor) -> torch.Tensor:
        o = self.objective
        return losses.tidal_lambda(self._progress(), t, o.tidal_axis, lam_init=o.lam_init,
                                   lam_max=o.lam_max, schedule=o.tidal_schedule)

    # --- Pipeline B: token level through the position alignment ----------------------------
    def _teacher_tokens(self, y0, valid, teacher_masked):
        return teacher_token_logits(self.teacher, y0, valid, teacher_masked, self.teacher_mask_id,
                                    self.block_size)

    def _propagate(self, student_sel, inputs):
        return propagate_to_teacher(student_sel, inputs)

    def _token_term(self, logits, inputs, t, masked, gen):
        o, y0, valid = self.objective, inputs["teacher_ids"], inputs["teacher_attention"].bool()
        if o.compdemo and masked.any():
            part_a, part_b = compdemo_split(masked, o.demo_ratio, gen)
            ta, tb = self._propagate(part_a, inputs), self._propagate(part_b, inputs)
            z_teacher = compdemo_combine(self._teacher_tokens(y0, valid, tb),
                                         self._teacher_tokens(y0, valid, ta), ta)
        else:
            z_teacher = self._teacher_tokens(y0, valid, self._propagate(masked, inputs))
        a_s, a_t, ok = inputs["align_student"], inputs["align_teacher"], inputs["align_valid"]
        omega = ok & torch.gather(masked, 1, a_s)
        v = self.shared_vocab
        zs = torch.gather(logits, 1, a_s[..., None].expand(-1, -1, logits.shape[-1]))[omega][:, :v]
        zt = torch.gather(z_teacher, 1, a_t[..., None].expand(-1, -1, z_teacher.shape[-1]))[omega][:, :v]
        if o.kind == "kl":
            return losses.forward_kl(zs, zt, o.temperature)
        if o.kind == "reverse_kl":
            return losses.reverse_kl(zs, zt, o.temperature)
        rows = torch.arange(omega.shape[0], device=omega.device)[:, None].expand_as(omega)[omega]
        lam = self._lambda(t)[rows]
        weight = losses.timestep_weight(t, o.tidal_weight)[rows]
        return losses.tidal(zs, zt, lam, weight, o.temperature)

    # --- Pipeline A: chunk level through the byte-aligned chunks ---------------------------
    def _teacher_token_lp(self, y0, attention, teacher_masked):
        return teacher_token_logprob(self.teacher, y0, attention, teacher_masked, self.teacher_mask_id)

    def _chunk_term(self, logits, inputs, t, teacher_masked, active, has_masked, gen):
        o, y0, a_s, a_t = self.objective, inputs["teacher_ids"], inputs["A_S"], inputs["A_T"]
        attention = inputs["teacher_attention"]
        if o.compdemo and has_masked.any():
            chunk_a, chunk_b = compdemo_split_chunks(has_masked, o.demo_ratio, gen)
            ta, tb = expand_chunks(chunk_a, a_t), expand_chunks(chunk_b, a_t)
            lp1 = self._teacher_token_lp(y0, attention, tb)
            lp2 = self._teacher_token_lp(y0, attention, ta)
            teacher_lp = torch.where(ta, lp2, lp1)  # chunk A read from pass 2, where it is masked
        else:
            teacher_lp = self._teacher_token_lp(y0, attention, teacher_masked)
        student_lp = losses.chunk_logprob(losses.token_logprob(logits, inputs["input_ids"]), a_s)
        teacher_chunk = losses.chunk_logprob(teacher_lp, a_t)
        if o.kind == "calm":
            return losses.calm(student_lp, teacher_chunk, active, o.temperature, reverse=o.reverse)
        lam = self._lambda(t)
        weight = losses.timestep_weight(t, o.tidal_weight)
        return losses.calm_tidal(student_lp, teacher_chunk, active, lam, weight, o.temperature,
                                 reverse=o.reverse)

    # --- logging: every loss term in every row of the curve ---------------------------------
    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            for name, values in self._terms.items():
                logs[name] = sum(values) / max(len(values), 1)
            self._terms.clear()
        super().log(logs, *args, **kwargs)
