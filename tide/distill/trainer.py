"""The distillation trainer: an HF Trainer subclass that only selects and combines losses.

Every step: BD3LM noise on the student (§b; :func:`tide.diffusion.corrupt`, the step SFT takes,
with the chunk-consistent mask as its hook in Pipeline A), the student forward on ``[xt ; x0]``, the
CE term (:func:`tide.diffusion.score`), and, unless the objective is ``none``, one or two (CompDemo)
teacher forwards under ``no_grad`` in the teacher's own token space, mask id and attention pattern,
followed by the objective's term (:func:`tide.distill.objectives.distill_term`) — token level for
Pipeline B (through the position alignment), chunk level for Pipeline A (through the byte-aligned
chunks). Batches come from :mod:`tide.distill.batches`; their alignment keys from
:mod:`tide.pipelines`.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from transformers import Trainer

from tide import diffusion, lean_losses, losses
from tide.align import chunk_consistent_mask
from tide.distill.compdemo import (
    compdemo_combine,
    compdemo_split,
    compdemo_split_chunks,
    expand_chunks,
)
from tide.distill.objectives import Objective, check_fits, distill_term
from tide.pipelines import ALIGN_STUDENT, ALIGN_TEACHER, ALIGN_VALID, get_pipeline
from tide.training.trainers import NoiseMixin


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
    check_fits(objective, pipeline)
    if objective.uses_teacher:
        if teacher is None:
            raise ValueError(f"objective kind {objective.kind!r} needs a teacher model")
        if not get_pipeline(pipeline).chunk_level and shared_vocab is None:
            raise ValueError(f"pipeline {pipeline!r} needs shared_vocab (the identical id prefix)")


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
    src = torch.gather(student_sel, 1, inputs[ALIGN_STUDENT]) & inputs[ALIGN_VALID]
    rows = torch.arange(sel.shape[0], device=sel.device)[:, None].expand_as(src)
    sel[rows[src], inputs[ALIGN_TEACHER][src]] = True
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


# --- the memory-lean path (lean_losses): LM heads applied at the scored positions only ------------
def _score_sources(model, needed: torch.Tensor) -> torch.Tensor:
    """Column ``[B, L]`` of the output that scores each position: ``i``, or ``i - 1`` (position 0:
    itself) for a model whose config sets ``right_shift_logits`` (read through a DDP wrapper)."""
    cols = torch.arange(needed.shape[1], device=needed.device).expand_as(needed)
    shifted = diffusion.uses_right_shift(getattr(model, "module", model))
    return (cols - 1).clamp(min=0) if shifted else cols


def _keep_and_rank(needed: torch.Tensor, sources: torch.Tensor, offset: int, width: int):
    """Output positions to keep ``[B, width]`` (the sources of ``needed`` shifted by ``offset``)
    and, per position of ``needed [B, L]``, its row among the kept outputs (row-major order)."""
    keep = torch.zeros(needed.shape[0], width, dtype=torch.bool, device=needed.device)
    rows = torch.arange(needed.shape[0], device=needed.device)[:, None].expand_as(needed)
    keep[rows[needed], sources[needed] + offset] = True
    rank = keep.flatten().long().cumsum(0).view_as(keep) - 1
    return keep, torch.gather(rank, 1, sources + offset)


def lm_logits_at(model, keep: torch.Tensor, **inputs) -> torch.Tensor:
    """Logits ``[K, V]`` of a language model at the ``K`` True positions of ``keep [B, S]``
    (row-major), the LM head applied to those hidden states only: through ``logits_to_keep``
    (Qwen3 classes: the a2d student, WeDLM), else the decoder and ``lm_head`` separately (LLaDA2),
    else (a model with neither) its full logits, indexed."""
    from transformers import Qwen3ForCausalLM

    inner = getattr(model, "module", model)  # under DDP: still call the wrapper's forward
    if isinstance(inner, Qwen3ForCausalLM):
        return model(**inputs, logits_to_keep=keep).logits
    decoder, head = getattr(inner, "model", None), getattr(inner, "lm_head", None)
    if decoder is not None and head is not None:
        hidden = decoder(**inputs).last_hidden_state
        return head(hidden[keep.to(hidden.device)])
    logits = model(**inputs).logits
    return logits[keep.to(logits.device)]


def student_logits_at(model, xt: torch.Tensor, x0: torch.Tensor, block_size: int,
                      needed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of :func:`tide.diffusion.student_logits` at ``needed [B, L]`` without the
    ``[B, L, V]`` tensor: returns ``logits [K, V]`` (the student's dtype) and ``row [B, L]``, the
    row of ``logits`` scoring each needed position (meaningless elsewhere). ``K`` = number of
    distinct outputs needed (the right shift maps positions 0 and 1 to one output)."""
    input_ids, position_ids, attention_mask = diffusion.bd3lm_inputs(xt, x0, block_size)
    keep, row = _keep_and_rank(needed, _score_sources(model, needed), 0, input_ids.shape[1])
    logits = lm_logits_at(model, keep, input_ids=input_ids, position_ids=position_ids,
                          attention_mask=attention_mask)
    return logits, row


@torch.no_grad()
def teacher_token_logits_at(teacher, y0: torch.Tensor, valid: torch.Tensor,
                            teacher_masked: torch.Tensor, mask_id: int, block_size: int,
                            needed: torch.Tensor, vocab: int | None = None):
    """Pipeline B, lean: the rows of :func:`teacher_token_logits` at ``needed [B, L_T]``, float32
    ``[K, V]`` (first ``vocab`` entries), and the row of each needed position ``[B, L_T]``."""
    yt = torch.where(teacher_masked, torch.full_like(y0, mask_id), y0)
    length = y0.shape[1]
    pos = torch.arange(length, device=y0.device).repeat(2)[None].expand(y0.shape[0], -1)
    mask = teacher_block_mask(valid, block_size, _weights_dtype(teacher))
    keep, row = _keep_and_rank(needed, _score_sources(teacher, needed), length, 2 * length)
    logits = lm_logits_at(teacher, keep, input_ids=torch.cat([y0, yt], 1), position_ids=pos,
                          attention_mask=mask)
    return logits[:, :vocab].float(), row


@torch.no_grad()
def teacher_token_logprob_at(teacher, y0: torch.Tensor, attention: torch.Tensor,
                             teacher_masked: torch.Tensor, mask_id: int,
                             needed: torch.Tensor) -> torch.Tensor:
    """Pipeline A, lean: :func:`teacher_token_logprob` at ``needed [B, L_T]``, 0 elsewhere."""
    yt = torch.where(teacher_masked, torch.full_like(y0, mask_id), y0)
    keep, row = _keep_and_rank(needed, _score_sources(teacher, needed), 0, y0.shape[1])
    logits = lm_logits_at(teacher, keep, input_ids=yt, attention_mask=attention)
    rows, cols = needed.nonzero(as_tuple=True)
    lp = lean_losses.constant_token_logprob(_take_rows(logits, row[rows, cols]), y0[rows, cols])
    return lean_losses.rows_to_grid(lp, rows, cols, tuple(y0.shape))


def _take_rows(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``logits[index]``, without a copy when ``index`` is ``0..K-1`` (the usual case)."""
    if index.numel() == logits.shape[0] and torch.equal(
            index, torch.arange(index.numel(), device=index.device)):
        return logits
    return logits[index]


class DistillTrainer(NoiseMixin, Trainer):
    """CE + one distillation term; ``pipeline`` is ``cross`` (chunk level) or ``shared`` (token level).

    ``lean_losses``: the same losses (within float tolerance) without vocabulary-sized tensors of
    positions that carry no loss: the LM heads of student and teacher run on the scored positions
    only, and the softmaxes go through :mod:`tide.lean_losses` in chunks of ``lean_chunk_size`` rows.
    Off: the plain implementation (what every pushed tiny result was trained with)."""

    def __init__(self, *args, teacher, objective: Objective, pipeline: str, student_mask_id: int,
                 teacher_mask_id: int, block_size: int, shared_vocab: int | None = None,
                 lean_losses: bool = False, lean_chunk_size: int = lean_losses.CHUNK_SIZE,
                 **kwargs):
        _check_setup(teacher, objective, pipeline, shared_vocab)
        super().__init__(*args, **kwargs)
        if teacher is not None:
            teacher = teacher.eval().requires_grad_(False)
            if getattr(teacher, "hf_device_map", None) is None:  # not sharded by accelerate
                teacher = teacher.to(self.args.device)
        self.teacher = teacher
        self.objective, self.pipeline = objective, pipeline
        self.chunk_level = get_pipeline(pipeline).chunk_level
        self.student_mask_id, self.teacher_mask_id = student_mask_id, teacher_mask_id
        self.block_size, self.shared_vocab = block_size, shared_vocab
        self.lean, self.lean_chunk_size = bool(lean_losses), int(lean_chunk_size)
        self._terms: dict[str, list[float]] = defaultdict(list)

    # --- the step ----------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        gen = self.noise_generator()
        x0, labels = inputs["input_ids"], inputs["labels"]
        remask = None  # Pipeline A: whole chunks, state (teacher_masked, active, has_masked)
        if self.chunk_level:
            def remask(masked):
                return chunk_consistent_mask(masked, inputs[ALIGN_STUDENT], inputs[ALIGN_TEACHER],
                                             labels)
        noised = diffusion.corrupt(model, x0, labels, mask_id=self.student_mask_id, generator=gen,
                                   remask=remask)
        terms = self._lean_terms if self.lean else self._plain_terms
        ce, kd, logits = terms(model, noised, inputs, gen)
        loss = ce + self.objective.weight * kd
        self._terms["ce"].append(ce.item())
        self._terms["kd"].append(kd.item())
        self._terms["progress"].append(self._progress())  # the P this step used (TIDAL)
        return (loss, {"logits": logits}) if return_outputs else loss

    def _plain_terms(self, model, noised: diffusion.Corruption, inputs, gen):
        """CE and KD from the student's full logits ``[B, L, V]`` (returned as the outputs)."""
        x0, t = inputs["input_ids"], noised.t
        logits = diffusion.student_logits(model, noised.xt, x0, self.block_size)
        ce = diffusion.score(logits, x0, noised)
        kd = torch.zeros((), device=ce.device)
        if self.objective.uses_teacher:
            if self.chunk_level:
                kd = self._chunk_term(logits, inputs, t, *noised.state, gen)
            else:
                kd = self._token_term(logits, inputs, t, noised.masked, gen)
        return ce, kd, logits

    def _lean_terms(self, model, noised: diffusion.Corruption, inputs, gen):
        """CE and KD from the student's logits at the scored positions only (``[K, V]``, returned
        as the outputs): the masked positions and, in Pipeline A, those of active chunks."""
        x0, t, masked = inputs["input_ids"], noised.t, noised.masked
        needed, extra = masked, None
        if self.chunk_level and self.objective.uses_teacher:
            active = noised.state[1]
            extra = (inputs[ALIGN_STUDENT] & active[:, None, :]).any(-1)  # active chunks' tokens
            needed = masked | extra
        logits, row = student_logits_at(model, noised.xt, x0, self.block_size, needed)
        size = self.lean_chunk_size
        rows, cols = masked.nonzero(as_tuple=True)
        ce = lean_losses.lean_bd3lm_ce(_take_rows(logits, row[rows, cols]), x0[rows, cols], rows,
                                       noised.maskable, t, chunk_size=size)
        kd = torch.zeros((), device=ce.device)
        if self.objective.uses_teacher:
            if self.chunk_level:
                kd = self._lean_chunk_term(logits, row, inputs, t, extra, *noised.state, gen)
            else:
                kd = self._lean_token_term(logits, row, inputs, t, masked, gen)
        return ce, kd, logits

    def _progress(self) -> float:
        return min(1.0, self.state.global_step / max(self.state.max_steps, 1))

    def _interpolation(self, t: torch.Tensor) -> dict:
        """TIDAL's ``lam`` and timestep ``weight`` per row ``[B]`` (empty for other kinds)."""
        o = self.objective
        if not o.interpolated:
            return {}
        lam = losses.tidal_lambda(self._progress(), t, o.tidal_axis, lam_init=o.lam_init,
                                  lam_max=o.lam_max, schedule=o.tidal_schedule)
        return {"lam": lam, "weight": losses.timestep_weight(t, o.tidal_weight)}

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
        a_s, a_t, ok = inputs[ALIGN_STUDENT], inputs[ALIGN_TEACHER], inputs[ALIGN_VALID]
        omega = ok & torch.gather(masked, 1, a_s)
        v = self.shared_vocab
        zs = torch.gather(logits, 1, a_s[..., None].expand(-1, -1, logits.shape[-1]))[omega][:, :v]
        zt = torch.gather(z_teacher, 1, a_t[..., None].expand(-1, -1, z_teacher.shape[-1]))[omega][:, :v]
        rows = torch.arange(omega.shape[0], device=omega.device)[:, None].expand_as(omega)[omega]
        per_pair = {k: value[rows] for k, value in self._interpolation(t).items()}
        return distill_term(o, zs, zt, **per_pair)

    # --- Pipeline A: chunk level through the byte-aligned chunks ---------------------------
    def _teacher_token_lp(self, y0, attention, teacher_masked):
        return teacher_token_logprob(self.teacher, y0, attention, teacher_masked, self.teacher_mask_id)

    def _chunk_term(self, logits, inputs, t, teacher_masked, active, has_masked, gen):
        o, y0, a_s, a_t = self.objective, inputs["teacher_ids"], inputs[ALIGN_STUDENT], inputs[ALIGN_TEACHER]
        attention = inputs["teacher_attention"]
        if o.compdemo and has_masked.any():
            chunk_a, chunk_b = compdemo_split_chunks(has_masked, o.demo_ratio, gen)
            ta, tb = expand_chunks(chunk_a, a_t), expand_chunks(chunk_b, a_t)
            teacher_lp = compdemo_combine(self._teacher_token_lp(y0, attention, tb),
                                          self._teacher_token_lp(y0, attention, ta), ta)
        else:
            teacher_lp = self._teacher_token_lp(y0, attention, teacher_masked)
        student_lp = losses.chunk_logprob(losses.token_logprob(logits, inputs["input_ids"]), a_s)
        teacher_chunk = losses.chunk_logprob(teacher_lp, a_t)
        return distill_term(o, student_lp, teacher_chunk, active, **self._interpolation(t))

    # --- the lean path (lean_losses) ---------------------------------------------------------
    def _lean_token_term(self, logits, row, inputs, t, masked, gen):
        """:meth:`_token_term` with both LM heads at the distilled pairs only."""
        o, y0, valid = self.objective, inputs["teacher_ids"], inputs["teacher_attention"].bool()
        a_s, a_t, ok = inputs[ALIGN_STUDENT], inputs[ALIGN_TEACHER], inputs[ALIGN_VALID]
        omega = ok & torch.gather(masked, 1, a_s)
        b_idx = torch.arange(omega.shape[0], device=omega.device)[:, None].expand_as(omega)[omega]
        s_pos, t_pos = a_s[omega], a_t[omega]
        v, size = self.shared_vocab, self.lean_chunk_size
        needed = torch.zeros_like(y0, dtype=torch.bool)
        needed[b_idx, t_pos] = True
        args = (self.teacher, y0, valid)
        if o.compdemo and masked.any():
            part_a, part_b = compdemo_split(masked, o.demo_ratio, gen)
            ta, tb = self._propagate(part_a, inputs), self._propagate(part_b, inputs)
            # pass 1 masks tb (read outside ta), pass 2 masks ta (read at ta): plain order
            z1, r1 = teacher_token_logits_at(*args, tb, self.teacher_mask_id, self.block_size,
                                             needed & ~ta, v)
            z2, r2 = teacher_token_logits_at(*args, ta, self.teacher_mask_id, self.block_size,
                                             needed & ta, v)
            from_a = ta[b_idx, t_pos]
            zt = torch.empty(t_pos.shape[0], z1.shape[-1], dtype=z1.dtype, device=z1.device)
            zt[~from_a] = z1[r1[b_idx, t_pos][~from_a]]
            zt[from_a] = z2[r2[b_idx, t_pos][from_a]]
        else:
            z, r = teacher_token_logits_at(*args, self._propagate(masked, inputs),
                                           self.teacher_mask_id, self.block_size, needed, v)
            zt = z[r[b_idx, t_pos]]
        zs = logits[row[b_idx, s_pos]][:, :v]
        per_pair = {k: value[b_idx] for k, value in self._interpolation(t).items()}
        return distill_term(o, zs, zt, **per_pair, lean=True, chunk_size=size)

    def _lean_chunk_term(self, logits, row, inputs, t, chunk_pos, teacher_masked, active,
                         has_masked, gen):
        """:meth:`_chunk_term` with both LM heads at the positions of active chunks only."""
        o, y0, a_s, a_t = self.objective, inputs["teacher_ids"], inputs[ALIGN_STUDENT], inputs[ALIGN_TEACHER]
        attention = inputs["teacher_attention"]
        t_needed = (a_t & active[:, None, :]).any(-1)
        args = (self.teacher, y0, attention)
        if o.compdemo and has_masked.any():
            chunk_a, chunk_b = compdemo_split_chunks(has_masked, o.demo_ratio, gen)
            ta, tb = expand_chunks(chunk_a, a_t), expand_chunks(chunk_b, a_t)
            lp1 = teacher_token_logprob_at(*args, tb, self.teacher_mask_id, t_needed & ~ta)
            lp2 = teacher_token_logprob_at(*args, ta, self.teacher_mask_id, t_needed & ta)
            teacher_lp = compdemo_combine(lp1, lp2, ta)
        else:
            teacher_lp = teacher_token_logprob_at(*args, teacher_masked, self.teacher_mask_id,
                                                  t_needed)
        teacher_chunk = losses.chunk_logprob(teacher_lp, a_t)
        rows, cols = chunk_pos.nonzero(as_tuple=True)
        x0, size = inputs["input_ids"], self.lean_chunk_size
        zs, ids = _take_rows(logits, row[rows, cols]), x0[rows, cols]
        return distill_term(o, zs, ids, rows, cols, a_s, teacher_chunk, active,
                            **self._interpolation(t), lean=True, chunk_size=size)

    # --- logging: every loss term in every row of the curve ---------------------------------
    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            for name, values in self._terms.items():
                logs[name] = sum(values) / max(len(values), 1)
            self._terms.clear()
        super().log(logs, *args, **kwargs)
