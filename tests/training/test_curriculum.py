"""Curricula: focused step ranges draw only their families, the rest covers every row; the trainer
follows the order."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from transformers import Qwen3ForCausalLM

from tide.models.student import student_config
from tide.training.curriculum import curriculum_order
from tide.training.data import BlockCollator
from tide.training.loop import TrainConfig, train
from tide.training.trainers import CausalLMTrainer

FAMILIES = ["facts"] * 40 + ["code"] * 24 + ["mmlu"] * 10 + ["hellaswag"] * 6
LENGTHS = [5 + (7 * i) % 23 for i in range(len(FAMILIES))]
FOCUS = [{"families": ["mmlu", "hellaswag"], "start": 10, "end": 16}]


def _order(**kw):
    args = {"max_steps": 30, "batch_size": 8, "curriculum": FOCUS, "seed": 0, **kw}
    return curriculum_order(FAMILIES, LENGTHS, **args)


@pytest.mark.parametrize("by_length", [True, False])
def test_focused_steps_hold_only_their_families(by_length):
    order = _order(group_by_length=by_length)
    assert len(order) == 30 * 8
    batches = [order[i:i + 8] for i in range(0, len(order), 8)]
    for step, batch in enumerate(batches):
        fams = {FAMILIES[i] for i in batch}
        if 10 <= step < 16:
            assert fams <= {"mmlu", "hellaswag"}, (step, fams)
    focused = [i for b in batches[10:16] for i in b]
    assert Counter(focused).keys() == {i for i, f in enumerate(FAMILIES) if f in ("mmlu", "hellaswag")}
    # the mixed stream is a sequence of whole epochs: its first 80 draws are every row once
    mixed = [i for b in batches[:10] + batches[16:] for i in b]
    assert sorted(mixed[:80]) == list(range(80))
    assert sorted(mixed[80:160]) == list(range(80))


def test_the_order_follows_the_seed():
    assert _order() == _order()
    assert _order() != _order(seed=1)


def test_length_grouping_cuts_padding():
    def padding(order):
        return sum(max(LENGTHS[i] for i in order[k:k + 8]) * 8 - sum(LENGTHS[i] for i in order[k:k + 8])
                   for k in range(0, len(order), 8))
    assert padding(_order(group_by_length=True)) < padding(_order(group_by_length=False))


@pytest.mark.parametrize("curriculum, message", [
    ([{"families": ["gsm8k"], "start": 0, "end": 5}], r"\['gsm8k'\], which no training row has"),
    ([{"families": ["mmlu"], "start": 5, "end": 40}], r"\[5, 40\) is not inside the run's 30 steps"),
    ([{"families": ["mmlu"], "start": 5, "end": 5}], r"\[5, 5\) is not inside"),
    ([{"families": ["mmlu"], "start": 0, "end": 10}, {"families": ["code"], "start": 8, "end": 12}],
     r"\[0, 10\) and \[8, 12\) overlap"),
])
def test_bad_curricula_are_named(curriculum, message):
    with pytest.raises(ValueError, match=message):
        _order(curriculum=curriculum)


def test_config_checks_the_ranges():
    with pytest.raises(ValueError, match="not inside the run's 4 steps"):
        TrainConfig.from_dict({"max_steps": 4, "curriculum": [
            {"families": ["mmlu"], "start": 2, "end": 6}]})


def test_the_trainer_draws_rows_in_curriculum_order(tmp_path):
    rows = [{"input_ids": [3 + i] * LENGTHS[i], "labels": [3 + i] * LENGTHS[i],
             "family": f} for i, f in enumerate(FAMILIES)]
    cfg = TrainConfig.from_dict({"max_steps": 3, "batch_size": 8, "save_steps": 3,
                                 "logging_steps": 1, "max_length": 32,
                                 "curriculum": [{"families": ["mmlu"], "start": 1, "end": 2}]})
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(student_config(96, 0, 1, size="unit"))
    trainer = train(model, rows, BlockCollator(0, 1), cfg, work_dir=tmp_path / "work",
                    out_dir=tmp_path / "out", trainer_cls=CausalLMTrainer)
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == 3
    mmlu_tokens = {3 + i for i, f in enumerate(FAMILIES) if f == "mmlu"}
    assert set(batches[1]["input_ids"][:, 0].tolist()) <= mmlu_tokens
    assert not set(batches[0]["input_ids"][:, 0].tolist()) <= mmlu_tokens
