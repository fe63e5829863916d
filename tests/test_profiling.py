"""tide.profiling: a tiny random student and both teachers profiled on the CPU (fields, best of n,
memory, deterministic tokens), a checkpoint profiled through the CLI, and a real-shape row with
random weights marked as such."""

from __future__ import annotations

import json

import pytest
import torch

from tide.config import validate_config
from tide.models.configs import llada2_unit_config, wedlm_unit_config
from tide.models.llada2 import LLaDA2MoeModelLM
from tide.models.student import A2DQwen3LMHeadModel, student_config
from tide.models.wedlm import WeDLMForCausalLM
from tide.profiling import ProfileError, Target, measure, profile, sampler_settings

VOCAB = 320
MASK = VOCAB - 1


def _config(**profile) -> dict:
    return validate_config({"students": {"block_size": 4}, "profile": profile})


def _student(seed: int = 0):
    torch.manual_seed(seed)
    cfg = student_config(VOCAB, VOCAB - 2, VOCAB - 3, size="unit", a2d=True)
    return A2DQwen3LMHeadModel(cfg).eval()


def _target(model, role: str, batch: int = 1) -> Target:
    prompts = torch.arange(3, 9, dtype=torch.long)[None].expand(batch, -1).contiguous()
    return Target(model, role, prompts, MASK, None, True)


def _check(info: dict, gen_length: int, repeats: int) -> None:
    assert len(info["times_s"]) == repeats and info["repeats"] == repeats
    assert all(info["best_time_s"] <= t for t in info["times_s"])
    assert info["best_time_s"] == min(info["times_s"])
    assert info["peak_memory_bytes"] > 0 and info["peak_memory_bytes"] == max(
        info["peak_memory_runs_bytes"])
    assert info["deterministic"] is True
    assert info["generated_tokens"] == gen_length  # no early stop: the whole length every run
    assert len(set(info["forwards_per_run"])) == 1 and info["forwards_per_run"][0] >= 1
    assert info["tokens_per_s"] > 0


@pytest.mark.parametrize("role", ["student", "teacher_a", "teacher_b", "teacher_b_block"])
def test_profile_of_each_sampler(role):
    config = _config()
    if role == "teacher_b_block":
        config["eval"]["sampler"]["tide_wedlm"] = {"decoder": "block"}
        role = "teacher_b"
    if role == "student":
        model = _student()
    elif role == "teacher_a":
        model = LLaDA2MoeModelLM(llada2_unit_config(VOCAB)).eval()
    else:
        model = WeDLMForCausalLM(wedlm_unit_config(VOCAB)).eval()
    settings = sampler_settings(role, config)
    info = measure(_target(model, role), settings, gen_length=8, repeats=3, warmup=1)
    _check(info, gen_length=8, repeats=3)
    assert info["prompt_tokens"] == 6 and info["batch_size"] == 1
    expected = {"student": "tide.sampling.generate[reference]",
                "teacher_a": "tide.sampling.teachers.llada2_generate",
                "teacher_b": "tide.sampling.teachers.wedlm_generate"}[role]
    if settings.get("decoder") == "block":
        expected = "tide.sampling.generate[reference]"
    assert info["sampler"]["function"] == expected


def test_student_settings_follow_the_evaluation_and_the_method_setting():
    config = _config(method="reference")
    config["eval"]["sampler"]["tide_bd3lm"] = {"remasking": "random", "steps": 4}
    settings = sampler_settings("student", config)
    assert settings == {"method": "reference", "steps": 4, "remasking": "random",
                        "temperature": 0.0, "block_size": 4}
    assert sampler_settings("teacher_a", config)["block_size"] == 4
    config["profile"]["method"] = "no_such_sampler"
    with pytest.raises(ProfileError, match="no_such_sampler"):
        measure(_target(_student(), "student"), sampler_settings("student", config),
                gen_length=4, repeats=1, warmup=0)


def test_batch_rows_are_generated_together():
    info = measure(_target(_student(), "student", batch=2), sampler_settings("student", _config()),
                   gen_length=4, repeats=2, warmup=0)
    _check(info, gen_length=4, repeats=2)
    assert info["batch_size"] == 2


def test_checkpoint_profile_through_the_cli(tmp_path):
    """A saved student with its tokenizer, profiled by `python -m tide profile`: the record has
    the prompt through the chat template, device, dtype, attention, versions and git sha."""
    from tide.cli import main
    from tide.tokenization import load_tokenizer, train_tokenizers

    texts = ["The quick brown fox jumps over the lazy dog, step by step."] * 50
    paths = train_tokenizers(texts, tmp_path / "tok", {"student": {"vocab_size": 300}})
    tok = load_tokenizer(paths["student"])
    cfg = student_config(len(tok), tok.pad_token_id, tok.eos_token_id, size="unit", a2d=True)
    ckpt = tmp_path / "student"
    A2DQwen3LMHeadModel(cfg).save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    out = tmp_path / "profile" / "student.json"
    overrides = {"students": {"block_size": 4},
                 "profile": {"gen_length": 8, "repeats": 2, "warmup": 1, "prompt": "Two words."}}
    assert main(["profile", "--config-json", json.dumps(overrides), "--threads", "1",
                 "--model", str(ckpt), "--out", str(out)]) == 0
    info = json.loads(out.read_text())
    _check(info, gen_length=8, repeats=2)
    assert info["random_weights"] is False and info["role"] == "student"
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["attention"] == "sdpa"
    assert info["prompt_tokens"] > 2 and info["torch_threads"] == 1
    assert {"torch", "transformers"} <= set(info["versions"]) and info["git_sha"]
    assert info["baseline_rss_bytes"] > 0 and "resident" in info["memory_measure"]
    assert info["config"]["profile"]["gen_length"] == 8
    # the record holds the keys the stage declares (tide.cli), nothing else
    assert set(info["config"]) == {"scale", "profile", "eval", "students", "attention"}
    assert set(info["config"]["eval"]) == {"sampler"} and info["config"]["students"] == {"block_size": 4}


def test_real_shape_row_is_marked_random_weights():
    """The 0.6B student's real shape (vocab 151936, hidden 1024) with one of its 28 layers."""
    config = _config(random_weights_shapes=[
        {"name": "student_1layer", "role": "student", "num_hidden_layers": 1, "gen_length": 4,
         "repeats": 2, "prompt_length": 4}], warmup=0)
    info = profile(config, shape="student_1layer")
    _check(info, gen_length=4, repeats=2)
    assert info["random_weights"] is True and info["model"] == "shapes/student_1layer"
    assert info["num_hidden_layers"] == 1 and info["full_depth"] == 28
    assert info["model_type"] == "a2d-qwen3" and info["mask_id"] == 151669
    assert info["weights_bytes"] >= 151936 * 1024 * 4  # the embedding alone, fp32
    with pytest.raises(ProfileError, match="unknown shape"):
        profile(config, shape="nope")
