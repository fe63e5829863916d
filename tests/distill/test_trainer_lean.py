"""The distillation trainer's memory-lean path (``lean_losses``, :mod:`tide.lean_losses`) against
its plain one: every variant's loss terms and gradients, and a whole optimizer step."""

from __future__ import annotations

import csv

import pytest
import torch
from distill_world import BLOCK, make_student, make_teacher, teacher_tok
from safetensors.torch import load_file

from tide.distill.objectives import NATIVE, VARIANTS, objective
from tide.distill.trainer import DistillTrainer
from tide.pipelines import PIPELINES
from tide.training.loop import TrainConfig, train

torch.set_num_threads(1)


def _kwargs(world, pipeline, variant, shift, lean):
    return {"teacher": make_teacher(world, pipeline, shift=shift),
            "objective": objective(pipeline, variant), "pipeline": pipeline,
            "student_mask_id": world.student_mask,
            "teacher_mask_id": teacher_tok(world, pipeline).mask_token_id, "block_size": BLOCK,
            "shared_vocab": world.shared_vocab, "lean_losses": lean}


@pytest.mark.parametrize("pipeline,variant", [(p, v) for p in PIPELINES for v in VARIANTS[p]])
@pytest.mark.parametrize("shift", [False, True])
def test_trainer_step_lean_equals_plain(world, tmp_path, pipeline, variant, shift):
    """``compute_loss`` of every variant: the same CE, KD and gradient of every student weight."""
    data = world.data[pipeline]
    batch = world.collator[pipeline]([data[i] for i in range(len(data))])
    results = []
    for lean in (False, True):
        student = make_student(world, shift=shift)
        args = TrainConfig.from_dict({"max_steps": 10, "batch_size": 8,
                                      "logging_steps": 1}).arguments(tmp_path / "w")
        trainer = DistillTrainer(model=student, args=args, **_kwargs(world, pipeline, variant,
                                                                     shift, lean))
        trainer.state.global_step = 3  # a TIDAL progress other than 0
        trainer.noise_generator = lambda: torch.Generator().manual_seed(77)
        loss = trainer.compute_loss(student, batch)
        loss.backward()
        grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
        results.append((loss.item(), trainer._terms["ce"][-1], trainer._terms["kd"][-1], grads))
    (loss0, ce0, kd0, g0), (loss1, ce1, kd1, g1) = results
    assert ce1 == pytest.approx(ce0, rel=1e-5) and kd1 == pytest.approx(kd0, rel=1e-5, abs=1e-7)
    assert loss1 == pytest.approx(loss0, rel=1e-5)
    if variant != "ce_only":
        assert kd0 != 0.0
    assert g0.keys() == g1.keys() and g0
    for name in g0:
        assert torch.allclose(g1[name], g0[name], rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("pipeline", list(PIPELINES))
def test_one_training_step_lean_equals_plain(world, tmp_path, pipeline):
    """A full optimizer step through ``train`` (the pipeline's native variant, CompDemo in
    ``tide_shared``): the same logged loss terms and the same weights afterwards."""
    outcome = []
    for lean in (False, True):
        out = tmp_path / f"lean{int(lean)}"
        cfg = TrainConfig.from_dict({"max_steps": 1, "batch_size": 8, "lr": 1e-3,
                                     "logging_steps": 1, "save_steps": 100, "max_length": 64,
                                     "seed": 0})
        for variant in sorted({NATIVE[pipeline], "tide_shared"}):
            train(make_student(world, shift=True), world.data[pipeline], world.collator[pipeline],
                  cfg, work_dir=out / variant / "work", out_dir=out / variant / "out",
                  trainer_cls=DistillTrainer, **_kwargs(world, pipeline, variant, False, lean))
        outcome.append(out)
    for variant in sorted({NATIVE[pipeline], "tide_shared"}):
        rows = []
        for out in outcome:
            with open(out / variant / "out" / "loss.csv", newline="") as fh:
                rows.append(list(csv.DictReader(fh)))
        for key in ("loss", "ce", "kd"):
            assert float(rows[1][0][key]) == pytest.approx(float(rows[0][0][key]), rel=1e-5), key
        plain = load_file(str(outcome[0] / variant / "out" / "model.safetensors"))
        lean = load_file(str(outcome[1] / variant / "out" / "model.safetensors"))
        assert plain.keys() == lean.keys()
        start = make_student(world, shift=True).state_dict()
        assert not torch.allclose(plain["model.embed_tokens.weight"],
                                  start["model.embed_tokens.weight"], atol=1e-4)  # it moved
        for name in plain:
            # Adam's first step is ~lr * sign(g): 1e-5 is 1% of the step (seen: <= 5e-6)
            assert torch.allclose(lean[name], plain[name], rtol=0, atol=1e-5), name
