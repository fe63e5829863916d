"""The memory-lean losses (tide.lean_losses) equal the plain ones (tide.losses) in value and gradient
on random cases (shapes, temperatures, chunk sizes that do and do not divide the row count, empty
selections), and a DistillTrainer step with ``lean_losses`` on equals the plain step (loss, every
gradient, the weights after an optimizer step) in both pipelines."""

from __future__ import annotations

import csv
import json
import random

import pytest
import torch
from safetensors.torch import load_file

from tide import lean_losses, losses

torch.set_num_threads(1)

SHAPES = [(1, 7), (13, 50), (40, 301)]
CHUNKS = [1, 4, 5, 1000]  # 4, 5: divide some counts and not others; 1000: one chunk


def _close(a, b, tol=1e-5):
    assert torch.allclose(a, b, rtol=tol, atol=tol), (a - b).abs().max()


def _grad(value, x):
    (g,) = torch.autograd.grad(value, x, retain_graph=True)
    return g


def _token_inputs(n, v, seed):
    gen = torch.Generator().manual_seed(seed)
    zs = (3 * torch.randn(n, v, generator=gen)).requires_grad_()
    zt = 3 * torch.randn(n, v, generator=gen)
    lam = torch.rand(n, generator=gen)
    weight = torch.rand(n, generator=gen) + 0.5
    return zs, zt, lam, weight


# ----------------------------------------------------------------------------- token KL / TIDAL
@pytest.mark.parametrize("n,v", SHAPES)
@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
def test_token_objectives_match_the_plain_ones(n, v, chunk, temperature):
    zs, zt, lam, weight = _token_inputs(n, v, seed=n * 1000 + v + chunk)
    pairs = [
        (losses.forward_kl(zs, zt, temperature),
         lean_losses.lean_forward_kl(zs, zt, temperature, chunk_size=chunk)),
        (losses.reverse_kl(zs, zt, temperature),
         lean_losses.lean_reverse_kl(zs, zt, temperature, chunk_size=chunk)),
        (losses.tidal(zs, zt, lam, weight, temperature),
         lean_losses.lean_tidal(zs, zt, lam, weight, temperature, chunk_size=chunk)),
    ]
    for plain, lean in pairs:
        assert lean.dtype == torch.float32 and lean.shape == ()
        _close(lean, plain)
        _close(_grad(lean, zs), _grad(plain, zs))


def test_token_objectives_in_bf16_logits_keep_the_logits_dtype():
    zs, zt, lam, weight = _token_inputs(9, 64, seed=3)
    zs16 = zs.detach().bfloat16().requires_grad_()
    plain = losses.tidal(zs16, zt, lam, weight, 2.0)
    lean = lean_losses.lean_tidal(zs16, zt, lam, weight, 2.0, chunk_size=4)
    _close(lean, plain)
    g_plain, g_lean = _grad(plain, zs16), _grad(lean, zs16)
    assert g_lean.dtype == torch.bfloat16
    _close(g_lean.float(), g_plain.float(), tol=1e-2)


@pytest.mark.parametrize("fn", ["lean_forward_kl", "lean_reverse_kl", "lean_tidal"])
def test_token_objectives_of_an_empty_selection_are_zero_with_zero_gradient(fn):
    zs = torch.randn(0, 11, requires_grad=True)
    zt = torch.randn(0, 11)
    extra = (torch.zeros(0), torch.zeros(0)) if fn == "lean_tidal" else ()
    value = getattr(lean_losses, fn)(zs, zt, *extra, 2.0, chunk_size=3)
    assert value.item() == 0.0
    value.backward()
    assert zs.grad is not None and zs.grad.shape == (0, 11)


# ----------------------------------------------------------------------------- BD3LM CE
def _ce_inputs(b, length, v, p_masked, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(b, length, v, generator=gen)).requires_grad_()
    x0 = torch.randint(0, v, (b, length), generator=gen)
    maskable = torch.rand(b, length, generator=gen) < 0.8
    masked = (torch.rand(b, length, generator=gen) < p_masked) & maskable
    t = torch.rand(b, generator=gen) * 0.9 + 0.05
    return logits, x0, masked, maskable, t


@pytest.mark.parametrize("b,length,v", [(1, 5, 9), (3, 17, 40), (4, 33, 257)])
@pytest.mark.parametrize("norm", ["token", "sequence", "batch"])
@pytest.mark.parametrize("weight", ["elbo", "uniform"])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_ce_matches_the_plain_one(b, length, v, norm, weight, chunk):
    logits, x0, masked, maskable, t = _ce_inputs(b, length, v, 0.5, seed=b + length + v + chunk)
    plain = losses.bd3lm_ce(logits, x0, masked, maskable, t, norm=norm, weight=weight)
    rows, cols = masked.nonzero(as_tuple=True)
    selected = logits[rows, cols]  # [N, V]: what the model's LM head produces in the lean path
    lean = lean_losses.lean_bd3lm_ce(selected, x0[rows, cols], rows, maskable, t, norm=norm,
                                     weight=weight, chunk_size=chunk)
    _close(lean, plain)
    _close(_grad(lean, logits), _grad(plain, logits))


def test_ce_of_no_masked_position_is_zero_with_zero_gradient():
    logits, x0, _, maskable, t = _ce_inputs(2, 6, 10, 0.0, seed=0)
    empty = torch.zeros(0, dtype=torch.long)
    lean = lean_losses.lean_bd3lm_ce(logits[empty, empty], x0[empty, empty], empty, maskable, t,
                                     chunk_size=4)
    assert lean.item() == 0.0
    g = _grad(lean, logits)
    assert torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_token_logprob_matches_the_plain_one(chunk):
    logits, x0, *_ = _ce_inputs(3, 11, 70, 0.5, seed=chunk)
    plain = losses.token_logprob(logits, x0)
    lean = lean_losses.lean_token_logprob(logits.flatten(0, 1), x0.flatten(), chunk_size=chunk)
    _close(lean.view_as(plain), plain)
    probe = torch.randn(plain.shape)
    _close(_grad((lean.view_as(plain) * probe).sum(), logits), _grad((plain * probe).sum(), logits))


# ----------------------------------------------------------------------------- CALM
def _calm_inputs(b, length, v, n_chunks, seed):
    gen = torch.Generator().manual_seed(seed)
    logits = (2 * torch.randn(b, length, v, generator=gen)).requires_grad_()
    x0 = torch.randint(0, v, (b, length), generator=gen)
    owner = torch.randint(-1, n_chunks, (b, length), generator=gen)  # -1: in no chunk
    chunks = owner[:, :, None] == torch.arange(n_chunks)[None, None]
    active = (torch.rand(b, n_chunks, generator=gen) < 0.6) & chunks.any(1)
    teacher_chunk = -torch.rand(b, n_chunks, generator=gen) * 4
    lam, weight = torch.rand(b, generator=gen), torch.rand(b, generator=gen) + 0.5
    return logits, x0, chunks, active, teacher_chunk, lam, weight


@pytest.mark.parametrize("b,length,v,n_chunks", [(1, 6, 9, 2), (3, 20, 31, 6), (2, 40, 200, 9)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 5.0])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_calm_objectives_match_the_plain_ones(b, length, v, n_chunks, reverse, temperature, chunk):
    logits, x0, chunks, active, teacher_chunk, lam, weight = _calm_inputs(
        b, length, v, n_chunks, seed=b * 7 + length + chunk)
    student_chunk = losses.chunk_logprob(losses.token_logprob(logits, x0), chunks)
    # the lean path scores only the positions of active chunks
    rows, cols = (chunks & active[:, None, :]).any(-1).nonzero(as_tuple=True)
    sel, ids = logits[rows, cols], x0[rows, cols]
    cases = [
        (losses.calm(student_chunk, teacher_chunk, active, temperature, reverse),
         lean_losses.lean_calm(sel, ids, rows, cols, chunks, teacher_chunk, active, temperature,
                               reverse, chunk_size=chunk)),
        (losses.calm_tidal(student_chunk, teacher_chunk, active, lam, weight, temperature, reverse),
         lean_losses.lean_calm_tidal(sel, ids, rows, cols, chunks, teacher_chunk, active, lam,
                                     weight, temperature, reverse, chunk_size=chunk)),
    ]
    for plain, lean in cases:
        _close(lean, plain)
        _close(_grad(lean, logits), _grad(plain, logits))


def test_calm_with_no_active_chunk_is_zero_with_zero_gradient():
    logits, x0, chunks, active, teacher_chunk, lam, weight = _calm_inputs(2, 10, 12, 3, seed=1)
    active = torch.zeros_like(active)
    rows, cols = (chunks & active[:, None, :]).any(-1).nonzero(as_tuple=True)
    for fn, extra in ((lean_losses.lean_calm, ()), (lean_losses.lean_calm_tidal, (lam, weight))):
        value = fn(logits[rows, cols], x0[rows, cols], rows, cols, chunks, teacher_chunk, active,
                   *extra, 5.0, True, chunk_size=2)
        assert value.item() == 0.0
        g = _grad(value, logits)
        assert not g.isnan().any() and torch.equal(g, torch.zeros_like(g))


# ----------------------------------------------------------------------------- the trainer
WORDS = ["apple", "river", "castle", "engine", "garden", "lantern", "violin", "golden", "quiet",
         "answer", "library"]
BLOCK = 8


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny distillation fixtures of tests/distill (tokenizers and both alignment caches)."""
    from tide.align import build_alignment_cache, load_alignment_cache
    from tide.distill.data import DistillCollator, DistillDataset
    from tide.tokenization import load_tokenizer, tokenizer_meta, train_tokenizers

    rng = random.Random(1)

    def text(k):
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + f" {rng.randrange(999)}."

    convs = [([{"role": "system", "content": "Answer briefly."}] if i % 2 else [])
             + [{"role": "user", "content": text(4)}, {"role": "assistant", "content": text(10)}]
             for i in range(8)]
    out = tmp_path_factory.mktemp("lean_world")
    texts = [m["content"] for c in convs for m in c] * 5
    dirs = train_tokenizers(texts, out / "tok",
                            {"student": {"vocab_size": 400}, "teacher_a": {"vocab_size": 420}})
    source = out / "distill.jsonl"
    source.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs))
    toks = {role: load_tokenizer(path) for role, path in dirs.items()}
    s = toks["student"]
    w = {"toks": toks, "data": {}, "collator": {},
         "shared_vocab": tokenizer_meta(toks["teacher_b"])["shared_vocab_size"]}
    for name, pipeline, role in (("A", "cross", "teacher_a"), ("B", "shared", "teacher_b")):
        path = out / f"align_{name}.safetensors"
        build_alignment_cache(name, dirs["student"], dirs[role], source, path, max_student_len=64,
                              max_teacher_len=96, progress=False)
        t = toks[role]
        w["data"][pipeline] = DistillDataset(load_alignment_cache(path))
        w["collator"][pipeline] = DistillCollator(pipeline, s.pad_token_id, s.eos_token_id,
                                                  t.pad_token_id, BLOCK,
                                                  teacher_eos_id=t.eos_token_id)
    return w


def _teacher_tok(world, pipeline):
    return world["toks"]["teacher_a" if pipeline == "cross" else "teacher_b"]


def _student(world, shift):
    from tide.models.student import A2DQwen3LMHeadModel, student_config

    torch.manual_seed(0)
    s = world["toks"]["student"]
    model = A2DQwen3LMHeadModel(student_config(len(s), s.pad_token_id, s.eos_token_id,
                                               size="unit", a2d=True))
    model.config.right_shift_logits = shift
    return model


def _teacher(world, pipeline, shift):
    from tide.models.configs import llada2_unit_config, wedlm_unit_config
    from tide.models.llada2 import LLaDA2MoeModelLM
    from tide.models.wedlm import WeDLMForCausalLM

    torch.manual_seed(1)
    t = _teacher_tok(world, pipeline)
    ids = {"pad_token_id": t.pad_token_id, "mask_token_id": t.mask_token_id,
           "eos_token_id": t.eos_token_id}
    if pipeline == "cross":
        config, cls = llada2_unit_config(len(t), **ids), LLaDA2MoeModelLM
    else:
        config, cls = wedlm_unit_config(len(t), **ids), WeDLMForCausalLM
    config._attn_implementation = "sdpa"
    model = cls(config).eval()
    model.config.right_shift_logits = shift
    return model


def _kwargs(world, pipeline, variant, shift, lean):
    from tide.distill.objectives import objective

    return {"teacher": _teacher(world, pipeline, shift), "objective": objective(pipeline, variant),
            "pipeline": pipeline, "student_mask_id": world["toks"]["student"].mask_token_id,
            "teacher_mask_id": _teacher_tok(world, pipeline).mask_token_id, "block_size": BLOCK,
            "shared_vocab": world["shared_vocab"], "lean_losses": lean}


def _variants():
    from tide.distill.objectives import VARIANTS

    return [(p, v) for p in ("cross", "shared") for v in VARIANTS[p]]


@pytest.mark.parametrize("pipeline,variant", _variants())
@pytest.mark.parametrize("shift", [False, True])
def test_trainer_step_lean_equals_plain(world, tmp_path, pipeline, variant, shift):
    """``compute_loss`` of every variant: the same CE, KD and gradient of every student weight."""
    from tide.distill.trainer import DistillTrainer
    from tide.training import TrainConfig

    batch = world["collator"][pipeline]([world["data"][pipeline][i]
                                         for i in range(len(world["data"][pipeline]))])
    results = []
    for lean in (False, True):
        student = _student(world, shift)
        args = TrainConfig(max_steps=10, batch_size=8, logging_steps=1).arguments(tmp_path / "w")
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


@pytest.mark.parametrize("pipeline", ["cross", "shared"])
def test_one_training_step_lean_equals_plain(world, tmp_path, pipeline):
    """A full optimizer step through ``train`` (the pipeline's native variant, CompDemo in
    ``tide_shared``): the same logged loss terms and the same weights afterwards."""
    from tide.distill.objectives import NATIVE
    from tide.distill.trainer import DistillTrainer
    from tide.training import TrainConfig, train

    outcome = []
    for lean in (False, True):
        out = tmp_path / f"lean{int(lean)}"
        cfg = TrainConfig(max_steps=1, batch_size=8, lr=1e-3, logging_steps=1, save_steps=100,
                          max_length=64, seed=0)
        for variant in sorted({NATIVE[pipeline], "tide_shared"}):
            train(_student(world, True), world["data"][pipeline], world["collator"][pipeline],
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
        start = _student(world, True).state_dict()
        assert not torch.allclose(plain["model.embed_tokens.weight"],
                                  start["model.embed_tokens.weight"], atol=1e-4)  # it moved
        for name in plain:
            # Adam's first step is ~lr * sign(g): 1e-5 is 1% of the step (seen: <= 5e-6)
            assert torch.allclose(lean[name], plain[name], rtol=0, atol=1e-5), name
