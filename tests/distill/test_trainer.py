"""DistillTrainer with unit-size models on real alignment caches: every variant trains, teacher
calls per step, CompDemo provenance (token and chunk level), the Pipeline-B KD value by hand, and
chunk-consistent masking in Pipeline A."""

from __future__ import annotations

import csv
import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from distill_world import BLOCK, make_student, make_teacher, teacher_tok
from torch import nn

import tide.diffusion
import tide.losses
from tide.align import chunk_consistent_mask
from tide.distill.objectives import KINDS, VARIANTS, objective
from tide.distill.signal import signal_draw, teacher_signal
from tide.distill.trainer import DistillTrainer
from tide.pipelines import PIPELINES
from tide.training.loop import TrainConfig, train

torch.set_num_threads(1)

STEPS = 2
MARK = 50.0  # logit a fake teacher puts on its marker id at the positions it saw masked
CASES = [(p, v) for p in PIPELINES for v in VARIANTS[p]]


def trainer_kwargs(world, pipeline: str, teacher, variant: str, **overrides) -> dict:
    return {
        "teacher": teacher,
        "objective": objective(pipeline, variant, overrides),
        "pipeline": pipeline,
        "student_mask_id": world.student_mask,
        "teacher_mask_id": teacher_tok(world, pipeline).mask_token_id,
        "block_size": BLOCK,
        "shared_vocab": world.shared_vocab,
    }


def direct_trainer(world, tmp_path, pipeline, variant, teacher, student=None):
    """A DistillTrainer whose ``compute_loss`` the tests call on hand-made batches."""
    args = TrainConfig.from_dict({"max_steps": 10, "batch_size": 8,
                                  "logging_steps": 1}).arguments(tmp_path / "work")
    student = student if student is not None else make_student(world)
    trainer = DistillTrainer(model=student, args=args, train_dataset=world.data[pipeline],
                             data_collator=world.collator[pipeline],
                             **trainer_kwargs(world, pipeline, teacher, variant))
    return trainer, student


def full_batch(world, pipeline):
    ds = world.data[pipeline]
    return world.collator[pipeline]([ds[i] for i in range(len(ds))])


class MarkerTeacher(nn.Module):
    """Fake teacher: logits 0 everywhere except ``MARK`` at ``marker`` where the input is the mask id.
    Records every input it receives."""

    def __init__(self, vocab: int, mask_id: int, marker: int):
        super().__init__()
        self.vocab, self.mask_id, self.marker = vocab, mask_id, marker
        self.anchor = nn.Parameter(torch.zeros(()))
        self.inputs: list[torch.Tensor] = []

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        self.inputs.append(input_ids.clone())
        logits = torch.zeros(*input_ids.shape, self.vocab) + self.anchor
        logits[..., self.marker] = MARK * (input_ids == self.mask_id).float()
        return SimpleNamespace(logits=logits)


def record_calls(monkeypatch, module, name: str) -> list:
    """Wrap ``module.name`` so that each call's arguments are appended to the returned list."""
    original, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def record_loss_calls(monkeypatch, kind: str) -> list:
    """Wrap the loss of objective ``kind`` in the kind table (what the trainer calls) so that
    each call's arguments are appended to the returned list."""
    entry, calls = KINDS[kind], []

    def wrapper(*args, **kwargs):
        calls.append(args)
        return entry.loss(*args, **kwargs)

    monkeypatch.setitem(KINDS, kind, dataclasses.replace(entry, loss=wrapper))
    return calls


# ----------------------------------------------------------------------------- every variant
@pytest.mark.parametrize("pipeline,variant", CASES)
def test_every_variant_trains_and_calls_the_teacher_as_expected(world, tmp_path, pipeline, variant):
    teacher = make_teacher(world, pipeline)
    calls = []
    teacher.register_forward_hook(lambda module, args, output: calls.append(1))
    cfg = TrainConfig.from_dict({"max_steps": STEPS, "batch_size": 4, "lr": 1e-3,
                                 "logging_steps": 1, "save_steps": 100, "max_length": 64,
                                 "seed": 0})
    train(make_student(world), world.data[pipeline], world.collator[pipeline], cfg,
          work_dir=tmp_path / "work", out_dir=tmp_path / "out", trainer_cls=DistillTrainer,
          **trainer_kwargs(world, pipeline, teacher, variant))
    with open(tmp_path / "out" / "loss.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == STEPS
    assert {"loss", "ce", "kd", "progress"} <= set(rows[0])
    for step, row in enumerate(rows):
        values = {k: float(row[k]) for k in ("loss", "ce", "kd", "progress")}
        assert all(math.isfinite(v) for v in values.values()), row
        assert values["ce"] > 0 and values["progress"] == step / STEPS
        assert values["loss"] == pytest.approx(values["ce"] + values["kd"], rel=1e-4, abs=1e-6)
    kd = [float(r["kd"]) for r in rows]
    obj = VARIANTS[pipeline][variant]
    if variant == "ce_only":
        assert kd == [0.0] * STEPS and calls == []
    else:
        assert all(v != 0.0 for v in kd)
        assert len(calls) == STEPS * (2 if obj.compdemo else 1)


def test_setup_mismatches_are_refused(world, tmp_path):
    args = TrainConfig.from_dict({"max_steps": 1}).arguments(tmp_path)
    base = {"model": make_student(world), "args": args}
    with pytest.raises(ValueError, match="needs a teacher"):
        DistillTrainer(**base, **trainer_kwargs(world, "shared", None, "kl"))
    kwargs = trainer_kwargs(world, "shared", make_teacher(world, "shared"), "kl")
    with pytest.raises(ValueError, match="does not fit pipeline"):
        DistillTrainer(**base, **{**kwargs, "pipeline": "cross"})
    with pytest.raises(ValueError, match="shared_vocab"):
        DistillTrainer(**base, **{**kwargs, "shared_vocab": None})
    ce_only = trainer_kwargs(world, "cross", None, "ce_only")
    assert DistillTrainer(**base, **ce_only).teacher is None


# ----------------------------------------------------------------------------- CompDemo provenance
def test_compdemo_token_level_reads_each_position_from_its_masked_pass(world, tmp_path, monkeypatch):
    t = teacher_tok(world, "shared")
    fake = MarkerTeacher(len(t), t.mask_token_id, marker=0)
    trainer, student = direct_trainer(world, tmp_path, "shared", "tide_shared", fake)
    batch = full_batch(world, "shared")
    gathered = record_loss_calls(monkeypatch, "tidal")
    noised = record_calls(monkeypatch, tide.diffusion, "noise")
    length = batch["teacher_ids"].shape[1]
    for step in range(3):
        fake.inputs.clear()
        trainer.compute_loss(student, batch)
        _, teacher_logits, *_ = gathered[-1]
        masked = noised[-1][1]
        # Ω: valid pairs whose student position is masked, one gathered row each
        omega = [(b, n) for b in range(masked.shape[0]) for n in range(batch["align_valid"].shape[1])
                 if batch["align_valid"][b, n] and masked[b, batch["align_student"][b, n]]]
        assert len(omega) > 10 and teacher_logits.shape == (len(omega), world.shared_vocab)
        assert (teacher_logits[:, 0] == MARK).all(), "a distilled position came from a revealed pass"
        # two passes over [y0 ; y_pass]: clean half untouched, noisy halves complementary
        assert len(fake.inputs) == 2
        y0 = batch["teacher_ids"]
        for ids in fake.inputs:
            assert torch.equal(ids[:, :length], y0)
        pass1, pass2 = (ids[:, length:] == t.mask_token_id for ids in fake.inputs)
        propagated = torch.zeros_like(pass1)
        for b, n in omega:
            propagated[b, batch["align_teacher"][b, n]] = True
        assert torch.equal(pass1 | pass2, propagated)
        assert not (pass1 & pass2).any() and pass1.any() and pass2.any()


def test_compdemo_chunk_level_reads_each_chunk_from_its_masked_pass(world, tmp_path, monkeypatch):
    t = teacher_tok(world, "cross")
    fake = MarkerTeacher(len(t), t.mask_token_id, marker=t.mask_token_id)  # never a y0 id
    trainer, student = direct_trainer(world, tmp_path, "cross", "tide_shared", fake)
    batch = full_batch(world, "cross")
    a_t = batch["align_teacher"]
    chunk_lps = record_calls(monkeypatch, tide.losses, "chunk_logprob")
    objectives = record_loss_calls(monkeypatch, "calm_tidal")
    for step in range(3):
        fake.inputs.clear()
        chunk_lps.clear()
        trainer.compute_loss(student, batch)
        (teacher_token_lp, _), = [args for args in chunk_lps if args[1] is a_t]
        active = objectives[-1][2]
        assert active.sum() > 5
        assert len(fake.inputs) == 2
        pass1, pass2 = (ids == t.mask_token_id for ids in fake.inputs)
        assert not (pass1 & pass2).any()
        seen_revealed = [False, False]
        for b, c in active.nonzero().tolist():
            tokens = a_t[b, :, c]
            # masked: log p(y0) ~ -MARK; revealed: -log V ~ -6
            assert (teacher_token_lp[b][tokens] < -MARK + 1).all(), (b, c)
            # the whole chunk sits in exactly one pass's masked set
            in1, in2 = pass1[b][tokens], pass2[b][tokens]
            assert (in1.all() and not in2.any()) or (in2.all() and not in1.any())
            seen_revealed[int(in1.all())] = True
        assert all(seen_revealed), "both passes should hold some distilled chunks"


# ----------------------------------------------------------------------------- Pipeline B value
def slow_block_mask(length: int, block: int, clean_first: bool) -> torch.Tensor:
    """method.md §b.5 with loops: bool [2L, 2L]."""
    mask = torch.zeros(2 * length, 2 * length, dtype=torch.bool)
    for q in range(2 * length):
        for k in range(2 * length):
            hq, hk = q >= length, k >= length
            bq, bk = (q - hq * length) // block, (k - hk * length) // block
            cq, ck = (hq, hk) if not clean_first else (not hq, not hk)
            mask[q, k] = ((bq == bk and cq == ck) or (not cq and ck and bk < bq)
                          or (cq and ck and bk <= bq))
    return mask


@pytest.mark.parametrize("teacher_shift", [False, True])
def test_pipeline_b_kd_is_forward_kl_at_aligned_masked_positions(world, tmp_path, teacher_shift):
    teacher = make_teacher(world, "shared")
    teacher.config.right_shift_logits = teacher_shift  # a tiny teacher: output k - 1 scores k
    trainer, student = direct_trainer(world, tmp_path, "shared", "kl", teacher)
    student.eval()
    seed = 1234
    trainer.noise_generator = lambda: torch.Generator().manual_seed(seed)
    batch = full_batch(world, "shared")
    loss = trainer.compute_loss(student, batch)
    kd = trainer._terms["kd"][-1]

    x0, labels = batch["input_ids"], batch["labels"]
    n_rows, length = x0.shape
    gen = torch.Generator().manual_seed(seed)
    t = 1e-3 + (1 - 1e-3) * torch.rand(n_rows, generator=gen)
    u = torch.rand(n_rows, length, generator=gen)
    masked = torch.zeros_like(x0, dtype=torch.bool)
    for b in range(n_rows):
        for i in range(length):
            masked[b, i] = bool(u[b, i] < t[b]) and labels[b, i] != -100
    xt = torch.where(masked, world.student_mask, x0)
    pos = torch.arange(length).repeat(2)[None].expand(n_rows, -1)
    with torch.no_grad():
        z_s = student(input_ids=torch.cat([xt, x0], 1), position_ids=pos,
                      attention_mask=slow_block_mask(length, BLOCK, False)[None, None]).logits
    z_s = z_s[:, :length]

    y0, valid = batch["teacher_ids"], batch["teacher_attention"].bool()
    n_t = y0.shape[1]
    t_mask_id = teacher_tok(world, "shared").mask_token_id
    yt = y0.clone()
    pairs = []
    for b in range(n_rows):
        for n in range(batch["align_valid"].shape[1]):
            i, k = int(batch["align_student"][b, n]), int(batch["align_teacher"][b, n])
            if batch["align_valid"][b, n] and masked[b, i]:
                yt[b, k] = t_mask_id
                pairs.append((b, i, k))
    allowed = slow_block_mask(n_t, BLOCK, True)
    additive = torch.zeros(n_rows, 1, 2 * n_t, 2 * n_t)
    for b in range(n_rows):
        ok = torch.cat([valid[b], valid[b]])
        hidden = ~(allowed & ok[:, None] & ok[None, :])
        additive[b, 0][hidden] = torch.finfo(torch.float32).min
    with torch.no_grad():
        z_t = teacher(input_ids=torch.cat([y0, yt], 1), position_ids=torch.arange(n_t).repeat(2)[None],
                      attention_mask=additive).logits[:, n_t:]
    if teacher_shift:
        z_t = torch.stack([z_t[:, max(k - 1, 0)] for k in range(n_t)], dim=1)
    v = world.shared_vocab
    zs = torch.stack([z_s[b, i, :v] for b, i, _ in pairs])
    zt = torch.stack([z_t[b, k, :v] for b, _, k in pairs])
    expected = tide.losses.forward_kl(zs, zt, 2.0).item()
    assert len(pairs) > 10 and expected > 0
    assert kd == pytest.approx(expected, rel=1e-4)
    assert loss.item() == pytest.approx(trainer._terms["ce"][-1] + expected, rel=1e-4)


def test_pipeline_a_teacher_logprobs_follow_the_teachers_shift(world, tmp_path):
    """Teacher-A is queried on ``yt`` alone with full attention; log p(y0[k]) is read from output
    ``k``, or ``k - 1`` for a teacher whose config sets ``right_shift_logits``."""
    teacher = make_teacher(world, "cross")
    trainer, _ = direct_trainer(world, tmp_path, "cross", "calm", teacher)
    batch = full_batch(world, "cross")
    y0, attention = batch["teacher_ids"], batch["teacher_attention"]
    masked = (torch.arange(y0.shape[1]) % 3 == 1)[None].expand_as(y0) & attention.bool()
    yt = torch.where(masked, teacher_tok(world, "cross").mask_token_id, y0)
    with torch.no_grad():
        z = teacher(input_ids=yt, attention_mask=attention).logits
    for shift in (False, True):
        teacher.config.right_shift_logits = shift
        got = trainer._teacher_token_lp(y0, attention, masked)
        scores = torch.cat([z[:, :1], z[:, :-1]], dim=1) if shift else z
        expected = torch.log_softmax(scores.float(), -1).gather(-1, y0[..., None])[..., 0]
        assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got[:, 1:], torch.log_softmax(z.float(), -1)
                              .gather(-1, y0[..., None])[:, 1:, 0], atol=1e-3)


# ----------------------------------------------------------------------------- Pipeline A masking
def test_pipeline_a_masks_whole_chunks_and_never_activates_prompt_chunks(world, tmp_path, monkeypatch):
    t = teacher_tok(world, "cross")
    fake = MarkerTeacher(len(t), t.mask_token_id, marker=t.mask_token_id)
    trainer, student = direct_trainer(world, tmp_path, "cross", "tide_cross", fake)
    batch = full_batch(world, "cross")
    a_s, a_t, labels = batch["align_student"], batch["align_teacher"], batch["labels"]
    objectives = record_loss_calls(monkeypatch, "calm")
    noised = record_calls(monkeypatch, tide.diffusion, "noise")
    prompt_chunk = (a_s & (labels == -100)[:, :, None]).any(1)  # [B, C]
    assert prompt_chunk.any(), "the batch should hold chunks of prompt messages"
    for step in range(3):
        fake.inputs.clear()
        trainer.compute_loss(student, batch)
        active = objectives[-1][2]
        masked = noised[-1][1]
        (teacher_in,) = fake.inputs
        t_masked = teacher_in == t.mask_token_id
        assert active.any() and not (active & prompt_chunk).any()
        for b in range(a_s.shape[0]):
            for c in range(a_s.shape[2]):
                s_tok, t_tok = a_s[b, :, c], a_t[b, :, c]
                if not s_tok.any():
                    continue  # padded chunk column
                student_hit = masked[b][s_tok]
                teacher_hit = t_masked[b][t_tok]
                # whole chunks on the teacher side, exactly the chunks with a masked student token
                assert teacher_hit.all() == teacher_hit.any() == student_hit.any(), (b, c)
                if not prompt_chunk[b, c]:
                    assert student_hit.all() == student_hit.any()  # chunk-consistent student mask
                    assert bool(active[b, c]) == bool(student_hit.any())
        outside = ~a_t.any(-1)
        assert not t_masked[outside].any(), "a teacher token outside every chunk was masked"


# ----------------------------------------------------------------------------- the teacher signal
def _signal(world, pipeline, model, teacher, draws=1):
    ds = world.data[pipeline]
    return teacher_signal(
        pipeline, model, teacher, ds, world.collator[pipeline], student_mask_id=world.student_mask,
        teacher_mask_id=teacher_tok(world, pipeline).mask_token_id, block_size=BLOCK,
        shared_vocab=world.shared_vocab, seed=3, draws=draws, batch_size=len(ds))


def test_signal_pipeline_b_is_the_kl_objective_at_temperature_1(world, tmp_path):
    """With the trainer's noise set to the signal's first draw, the `kl` objective at temperature 1
    (checked by hand above) is the signal's KL; the teacher measured against itself has KL 0."""
    teacher, student = make_teacher(world, "shared"), make_student(world)
    got = _signal(world, "shared", student, teacher)
    trainer, _ = direct_trainer(world, tmp_path, "shared", "kl", teacher, student)
    trainer.objective = objective("shared", "kl", {"temperature": 1.0})
    trainer.noise_generator = lambda: signal_draw(3, 0, 0)
    with torch.no_grad():
        trainer.compute_loss(student, full_batch(world, "shared"))
    assert got["units"] > 10 and got["kl"] > 0
    assert got["kl"] == pytest.approx(trainer._terms["kd"][-1], rel=1e-5)
    assert 0 <= got["top1"] <= 1 and got["gold_nll"] > 0
    own = _signal(world, "shared", teacher, teacher)
    assert own["kl"] == 0 and own["units"] == got["units"]


def test_signal_pipeline_a_is_calm_less_the_teachers_entropy(world, tmp_path):
    """Forward CALM at temperature 1 is the Bernoulli cross-entropy H(q, s) = KL(q || s) + H(q)
    over active chunks: the signal's KL plus the mean entropy of the teacher's chunk likelihoods."""
    teacher, student = make_teacher(world, "cross"), make_student(world)
    got = _signal(world, "cross", student, teacher)
    trainer, _ = direct_trainer(world, tmp_path, "cross", "calm", teacher, student)
    trainer.objective = objective("cross", "calm", {"temperature": 1.0})
    trainer.noise_generator = lambda: signal_draw(3, 0, 0)
    batch = full_batch(world, "cross")
    with torch.no_grad():
        trainer.compute_loss(student, batch)
    gen = signal_draw(3, 0, 0)
    maskable = batch["labels"] != -100
    masked0 = tide.diffusion.sample_mask(maskable, tide.diffusion.sample_timesteps(
        maskable.shape[0], gen), gen)
    _, teacher_masked, active, _ = chunk_consistent_mask(masked0, batch["align_student"], batch["align_teacher"],
                                                         batch["labels"])
    lp = trainer._teacher_token_lp(batch["teacher_ids"], batch["teacher_attention"], teacher_masked)
    q = tide.losses.chunk_logprob(lp, batch["align_teacher"])[active].exp().clamp(1e-7, 1 - 1e-7).double()
    entropy = -(q * q.log() + (1 - q) * (1 - q).log()).mean().item()
    assert got["units"] == int(active.sum()) > 10
    assert got["kl"] + entropy == pytest.approx(trainer._terms["kd"][-1], rel=1e-4)
    own = _signal(world, "cross", teacher, teacher)
    assert own["kl"] == 0 and own["units"] == got["units"] and 0 <= own["top1"] <= 1


def test_signal_masks_are_fixed_and_the_same_for_every_model(world):
    teacher = make_teacher(world, "shared")
    a, b = make_student(world, seed=0), make_student(world, seed=5)
    first = _signal(world, "shared", a, teacher, draws=2)
    assert _signal(world, "shared", a, teacher, draws=2) == first  # deterministic
    other = _signal(world, "shared", b, teacher, draws=2)
    assert other["units"] == first["units"] and other["kl"] != first["kl"]
