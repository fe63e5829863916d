"""The attention switch (config key ``attention``): flash attention only where it can run (the
``flash_attn`` package, CUDA, no 4-D block masks, a class that supports it), else SDPA with a log
line saying why; the loader keeps SDPA by default."""

from __future__ import annotations

import logging
import sys
import types

import pytest
import torch

from tide.models import loading
from tide.models.loading import attn_implementation, load_model


@pytest.fixture
def no_flash(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import flash_attn raises ImportError


@pytest.fixture
def flash_and_cuda(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_sdpa_is_the_default_and_needs_no_check(no_flash, caplog):
    with caplog.at_level(logging.INFO, logger=loading.__name__):
        assert attn_implementation() == attn_implementation("sdpa") == "sdpa"
    assert not caplog.records


def test_auto_on_cpu_is_sdpa(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    with caplog.at_level(logging.INFO, logger=loading.__name__):
        assert attn_implementation("auto") == "sdpa"
    assert "no CUDA device" in caplog.text


def test_flash_requested_without_flash_attn_falls_back_with_a_warning(no_flash, caplog):
    with caplog.at_level(logging.INFO, logger=loading.__name__):
        assert attn_implementation("flash_attention_2") == "sdpa"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "flash_attn is not installed" in record.getMessage()


def test_flash_where_it_can_run(flash_and_cuda):
    from tide.models.student import A2DQwen3LMHeadModel

    assert attn_implementation("flash_attention_2") == "flash_attention_2"
    assert attn_implementation("auto", model_class=A2DQwen3LMHeadModel) == "flash_attention_2"


def test_block_masks_and_classes_without_flash_keep_sdpa(flash_and_cuda, caplog):
    from tide.models.llada2 import LLaDA2MoeModelLM

    with caplog.at_level(logging.INFO, logger=loading.__name__):
        assert attn_implementation("flash_attention_2", dense_mask=True) == "sdpa"
        assert attn_implementation("auto", model_class=LLaDA2MoeModelLM) == "sdpa"
    assert "4-D block-diffusion masks" in caplog.text and "does not support flash" in caplog.text


def test_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="unknown attention 'eager'"):
        attn_implementation("eager")


def test_the_loader_keeps_sdpa_unless_flash_can_run(tmp_path, no_flash):
    from tide.models.student import A2DQwen3LMHeadModel, student_config

    A2DQwen3LMHeadModel(student_config(64, 0, 1, size="unit", a2d=True)).save_pretrained(tmp_path)
    for kwargs in ({}, {"attention": "flash_attention_2"}, {"attention": "auto", "dense_mask": False}):
        model = load_model(tmp_path, kind="student", **kwargs)
        assert model.config._attn_implementation == "sdpa", kwargs


def test_the_schema_offers_the_switch():
    from tide.config import load_config

    assert load_config()["attention"] == "sdpa"
    assert load_config(overrides={"attention": "auto"})["attention"] == "auto"
