"""How close a model is to a pipeline's teacher on rows no model trained on (the teacher signal).

On the ``signal_probe`` rows, with masks fixed by a seed (the same for every model measured), the
student is scored as in distillation (BD3LM noise, its forward on ``[xt ; x0]``) and the teacher as
the pipeline queries it. Every measure is a mean over the masked response units of all rows and
draws:

* Pipeline B (``shared``), per masked student position with an aligned teacher position:
  ``kl`` = KL(teacher || student) over the shared vocabulary at temperature 1, ``gold_nll`` and
  ``top1`` (argmax = the gold token);
* Pipeline A (``cross``), per active chunk (:func:`tide.align.chunk_consistent_mask`): ``kl`` = the
  KL between the Bernoulli chunk likelihoods ``q = exp(L_T)``, ``s = exp(L_S)`` (what CALM's forward
  cross-entropy minimises, less the teacher's entropy), ``gold_nll = -L`` per chunk, ``top1`` =
  every token of the chunk is its argmax.

The teacher itself is measured the same way (``kl`` 0), so its row says how much there is to learn.
"""

from __future__ import annotations

import math

import torch

from tide import diffusion, losses
from tide.align import chunk_consistent_mask
from tide.distill.batches import DistillCollator
from tide.distill.trainer import propagate_to_teacher, teacher_full_logits, teacher_token_logits
from tide.pipelines import ALIGN_STUDENT, ALIGN_TEACHER, ALIGN_VALID, get_pipeline


def signal_draw(seed: int, batch: int, draw: int) -> torch.Generator:
    """The generator of masks ``draw`` of batch ``batch``: the same for every model measured."""
    return torch.Generator().manual_seed(seed * 1_000_003 + batch * 1009 + draw)


def _bernoulli_kl(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(Bernoulli(q) || Bernoulli(s)) of probabilities in (0, 1)."""
    return q * (q.log() - s.log()) + (1 - q) * ((1 - q).log() - (1 - s).log())


class _Sums:
    def __init__(self):
        self.kl = self.nll = self.top1 = 0.0
        self.n = 0

    def add(self, kl: torch.Tensor, nll: torch.Tensor, top1: torch.Tensor) -> None:
        self.kl += float(kl.double().sum())
        self.nll += float(nll.double().sum())
        self.top1 += float(top1.double().sum())
        self.n += int(nll.numel())

    def result(self) -> dict:
        if self.n == 0:  # nothing masked and aligned: no measure, not a zero
            return {"kl": math.nan, "gold_nll": math.nan, "top1": math.nan, "units": 0}
        return {"kl": self.kl / self.n, "gold_nll": self.nll / self.n,
                "top1": self.top1 / self.n, "units": self.n}


def _token_units(student, teacher, batch, masked, mask_ids, block_size, measure_teacher):
    """Pipeline B: (kl, gold nll, top-1) per masked aligned student position."""
    y0, valid = batch["teacher_ids"], batch["teacher_attention"].bool()
    z_teacher = teacher_token_logits(teacher, y0, valid, propagate_to_teacher(masked, batch),
                                     mask_ids[1], block_size)
    a_s, a_t = batch[ALIGN_STUDENT], batch[ALIGN_TEACHER]
    omega = batch[ALIGN_VALID] & torch.gather(masked, 1, a_s)
    zt = torch.gather(z_teacher, 1, a_t[..., None].expand(-1, -1, z_teacher.shape[-1]))[omega]
    gold_t = torch.gather(y0, 1, a_t)[omega]
    if measure_teacher:
        lp = torch.log_softmax(zt, -1)
        nll = -lp.gather(1, gold_t[:, None])[:, 0]
        return torch.zeros_like(nll), nll, (zt.argmax(-1) == gold_t)
    x0 = batch["input_ids"]
    logits = diffusion.student_logits(student, diffusion.noise(x0, masked, mask_ids[0]), x0,
                                      block_size).float()
    zs = torch.gather(logits, 1, a_s[..., None].expand(-1, -1, logits.shape[-1]))[omega]
    gold = torch.gather(x0, 1, a_s)[omega]
    v = batch["shared_vocab"]
    lp_t, lp_s = torch.log_softmax(zt[:, :v], -1), torch.log_softmax(zs[:, :v], -1)
    kl = (lp_t.exp() * (lp_t - lp_s)).sum(-1)
    full = torch.log_softmax(zs, -1)
    return kl, -full.gather(1, gold[:, None])[:, 0], zs.argmax(-1) == gold


def _chunk_units(student, teacher, batch, masked0, mask_ids, measure_teacher):
    """Pipeline A: (kl, gold nll, top-1) per active chunk."""
    x0, labels = batch["input_ids"], batch["labels"]
    a_s, a_t, y0 = batch[ALIGN_STUDENT], batch[ALIGN_TEACHER], batch["teacher_ids"]
    masked, teacher_masked, active, _ = chunk_consistent_mask(masked0, a_s, a_t, labels)
    z_teacher = teacher_full_logits(teacher, y0, batch["teacher_attention"], teacher_masked,
                                    mask_ids[1])
    if measure_teacher:
        logits, ids, chunks = z_teacher, y0, a_t
    else:
        logits = diffusion.student_logits(student, diffusion.noise(x0, masked, mask_ids[0]), x0,
                                          block_size=batch["block_size"]).float()
        ids, chunks = x0, a_s
    own_lp = losses.chunk_logprob(losses.token_logprob(logits, ids), chunks)[active]
    wrong = (logits.argmax(-1) != ids).float()
    top1 = losses.chunk_logprob(wrong, chunks)[active] == 0  # no token of the chunk is wrong
    if measure_teacher:
        return torch.zeros_like(own_lp), -own_lp, top1
    lt = losses.chunk_logprob(losses.token_logprob(z_teacher, y0), a_t)[active]
    clamp = losses.CALM_PROB_CLAMP
    q, s = lt.exp().clamp(clamp, 1 - clamp), own_lp.exp().clamp(clamp, 1 - clamp)
    return _bernoulli_kl(q, s), -own_lp, top1


@torch.no_grad()
def teacher_signal(pipeline: str, model, teacher, rows, collator: DistillCollator, *,
                   student_mask_id: int, teacher_mask_id: int, block_size: int,
                   shared_vocab: int | None, seed: int, draws: int, batch_size: int) -> dict:
    """Mean ``kl``, ``gold_nll`` and ``top1`` of ``model`` against ``teacher`` over ``rows`` (an
    alignment cache of the probe split), ``draws`` fixed masks per row. ``model is teacher``
    measures the teacher itself. Returns the means and the number of units they average."""
    chunk_level = get_pipeline(pipeline).chunk_level
    if not chunk_level and shared_vocab is None:
        raise ValueError(f"pipeline {pipeline!r} needs shared_vocab (the identical id prefix)")
    measure_teacher = model is teacher
    model.eval()
    teacher.eval()
    sums = _Sums()
    for b, start in enumerate(range(0, len(rows), batch_size)):
        batch = collator([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
        # masks independent of the model measured (no right-shift exception: rows start with a prompt)
        maskable = batch["labels"] != diffusion.IGNORE_INDEX
        for d in range(draws):
            _, masked = diffusion.draw_mask(maskable, signal_draw(seed, b, d))
            if not chunk_level:
                units = _token_units(model, teacher, {**batch, "shared_vocab": shared_vocab},
                                     masked, (student_mask_id, teacher_mask_id), block_size,
                                     measure_teacher)
            else:
                units = _chunk_units(model, teacher, {**batch, "block_size": block_size}, masked,
                                     (student_mask_id, teacher_mask_id), measure_teacher)
            sums.add(*units)
    return sums.result()
