"""Teacher-A (LLaDA2 MoE): state-dict layout, MoE routing, partial RoPE, attention and mask
contract, HF round trips.

Each numerical test compares against a slow reference written here with explicit loops.
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

from tide.models.configs import llada2_parameter_count, llada2_tiny_world_config, llada2_unit_config
from tide.models.llada2 import (
    LLaDA2MoeAttention,
    LLaDA2MoeConfig,
    LLaDA2MoeModel,
    LLaDA2MoeModelLM,
    LLaDA2MoeRotaryEmbedding,
    LLaDA2MoeSparseMoeBlock,
    apply_partial_rotary,
)

torch.set_num_threads(1)

VOCAB = 320


def make_model(seed: int = 0, **overrides) -> LLaDA2MoeModelLM:
    """Unit-size model with weights large enough (std 0.2) that attention is far from uniform;
    random expert bias."""
    torch.manual_seed(seed)
    config = llada2_unit_config()
    config.initializer_range = 0.2
    for key, value in overrides.items():
        setattr(config, key, value)
    model = LLaDA2MoeModelLM(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LLaDA2MoeSparseMoeBlock):
                module.gate.expert_bias.normal_(0.0, 0.3)
    return model


def random_ids(batch: int, seq: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------------
# Layout


def test_state_dict_names_and_shapes_follow_the_checkpoint_spec():
    config = (
        llada2_unit_config()
    )  # hidden 64, 4 q heads / 2 kv heads of 16, layer 0 dense, layer 1 MoE (8 experts)
    expected = {
        "model.word_embeddings.weight": (320, 64),
        "model.norm.weight": (64,),
        "lm_head.weight": (320, 64),
    }
    for i in range(2):
        layer = f"model.layers.{i}"
        expected |= {
            f"{layer}.input_layernorm.weight": (64,),
            f"{layer}.post_attention_layernorm.weight": (64,),
            f"{layer}.attention.query_key_value.weight": ((4 + 2 + 2) * 16, 64),
            f"{layer}.attention.dense.weight": (64, 64),
            f"{layer}.attention.query_layernorm.weight": (16,),
            f"{layer}.attention.key_layernorm.weight": (16,),
        }
    expected |= {
        "model.layers.0.mlp.gate_proj.weight": (128, 64),
        "model.layers.0.mlp.up_proj.weight": (128, 64),
        "model.layers.0.mlp.down_proj.weight": (64, 128),
        "model.layers.1.mlp.gate.weight": (8, 64),
        "model.layers.1.mlp.gate.expert_bias": (8,),
    }
    for name in [f"experts.{e}" for e in range(8)] + ["shared_experts"]:
        expected |= {
            f"model.layers.1.mlp.{name}.gate_proj.weight": (32, 64),
            f"model.layers.1.mlp.{name}.up_proj.weight": (32, 64),
            f"model.layers.1.mlp.{name}.down_proj.weight": (64, 32),
        }
    state = LLaDA2MoeModelLM(config).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert (
        dict(LLaDA2MoeModelLM(config).named_buffers())["model.layers.1.mlp.gate.expert_bias"].dtype
        == torch.float32
    )


def test_parameter_counts_match_the_spec_sizes():
    unit = llada2_unit_config()
    assert (
        sum(p.numel() for p in LLaDA2MoeModelLM(unit).parameters())
        == 146_304
        == llada2_parameter_count(unit).total
    )
    tiny = llada2_tiny_world_config(1024, pad_token_id=1, mask_token_id=2)
    assert llada2_parameter_count(tiny).total == sum(
        p.numel() for p in LLaDA2MoeModelLM(tiny).parameters()
    )
    assert (llada2_parameter_count(tiny).total, llada2_parameter_count(tiny).active) == (
        1_817_984,
        933_248,
    )
    mini = (
        LLaDA2MoeConfig()
    )  # LLaDA2.0-mini: 16,255,643,392 incl. the 19 x 256 expert_bias entries (teachers.md)
    assert llada2_parameter_count(mini).total + 19 * 256 == 16_255_643_392


def test_config_accepts_rope_theta_or_rope_parameters_and_rejects_bad_moe_shapes():
    assert LLaDA2MoeConfig(rope_theta=1234).rope_parameters["rope_theta"] == 1234
    from_params = LLaDA2MoeConfig(rope_parameters={"rope_type": "default", "rope_theta": 777.0})
    assert from_params.rope_theta == 777.0 and from_params.rotary_dim == 64
    assert LLaDA2MoeRotaryEmbedding(from_params).inv_freq[1].item() == pytest.approx(
        777.0 ** (-2 / 64)
    )
    with pytest.raises(ValueError, match="n_group"):
        LLaDA2MoeConfig(num_experts=10, n_group=4)
    with pytest.raises(ValueError, match="topk_group"):
        LLaDA2MoeConfig(num_experts=8, n_group=4, topk_group=1, num_experts_per_tok=4)
    with pytest.raises(ValueError, match="rope type"):
        LLaDA2MoeConfig(rope_scaling={"rope_type": "linear", "factor": 2.0})


# --------------------------------------------------------------------------------------------------
# MoE routing


def reference_moe(block: LLaDA2MoeSparseMoeBlock, config: LLaDA2MoeConfig, x: torch.Tensor):
    """Per-token loop: sigmoid scores, biased group/expert selection, un-biased normalised weights x
    scaling."""
    per_group = config.num_experts // config.n_group
    out = torch.empty_like(x)
    picks = []
    for t in range(x.shape[0]):
        scores = [
            torch.sigmoid(block.gate.weight[e] @ x[t]).item() for e in range(config.num_experts)
        ]
        biased = [scores[e] + block.gate.expert_bias[e].item() for e in range(config.num_experts)]
        group_score = [
            sum(sorted(biased[g * per_group : (g + 1) * per_group])[-2:])
            for g in range(config.n_group)
        ]
        kept = sorted(range(config.n_group), key=lambda g: -group_score[g])[: config.topk_group]
        candidates = [e for e in range(config.num_experts) if e // per_group in kept]
        chosen = sorted(candidates, key=lambda e: -biased[e])[: config.num_experts_per_tok]
        total = sum(scores[e] for e in chosen)
        y = block.shared_experts(x[t])
        for e in chosen:
            y = y + config.routed_scaling_factor * scores[e] / total * block.experts[e](x[t])
        out[t] = y
        picks.append((set(chosen), biased, scores))
    return out, picks


def test_moe_block_matches_a_per_token_reference():
    model = make_model(seed=3)
    config = model.config
    block = model.model.layers[1].mlp
    x = torch.randn(2, 48, config.hidden_size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = block(x)
        want, picks = reference_moe(block, config, x.view(-1, config.hidden_size))
    torch.testing.assert_close(got.view(-1, config.hidden_size), want, atol=1e-5, rtol=1e-5)
    # the checked cases are non-trivial: the bias and the group restriction both change some
    # selections
    k = config.num_experts_per_tok
    unbiased_topk = [set(sorted(range(8), key=lambda e: -s[e])[:k]) for _, _, s in picks]
    global_topk = [set(sorted(range(8), key=lambda e: -b[e])[:k]) for _, b, _ in picks]
    assert any(chosen != u for (chosen, _, _), u in zip(picks, unbiased_topk))
    assert any(chosen != g for (chosen, _, _), g in zip(picks, global_topk))


def test_moe_block_output_is_unchanged_when_the_bias_is_shifted_by_a_constant():
    # routing weights come from un-biased scores; a constant bias shift changes neither selection
    # nor weights
    block = make_model(seed=5).model.layers[1].mlp
    x = torch.randn(1, 16, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        before = block(x)
        block.gate.expert_bias += 10.0
        after = block(x)
    torch.testing.assert_close(before, after, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------------------------------
# Partial RoPE and attention


def reference_rope(
    x: torch.Tensor, positions: torch.Tensor, theta: float, rotary: int
) -> torch.Tensor:
    """Loop over positions and rotary pairs (i, i + rotary/2); dims >= rotary copied."""
    out = x.clone()
    half = rotary // 2
    for b in range(x.shape[0]):
        for s in range(x.shape[2]):
            for i in range(half):
                angle = positions[b, s].item() * theta ** (-2 * i / rotary)
                c, si = math.cos(angle), math.sin(angle)
                a, bb = x[b, :, s, i], x[b, :, s, i + half]
                out[b, :, s, i] = a * c - bb * si
                out[b, :, s, i + half] = bb * c + a * si
    return out


def test_partial_rope_matches_reference_and_leaves_the_tail_untouched():
    config = llada2_unit_config()
    rope = LLaDA2MoeRotaryEmbedding(config)
    x = torch.randn(2, 3, 7, config.head_dim, generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 6], [40, 3, 17, 0, 511, 9, 250]])
    cos, sin = rope(positions, torch.float32)
    got = apply_partial_rotary(x, cos, sin)
    assert config.rotary_dim == 8
    assert torch.equal(got[..., 8:], x[..., 8:])
    torch.testing.assert_close(got, reference_rope(x, positions, 600000.0, 8), atol=1e-5, rtol=1e-5)


def reference_attention(attn: LLaDA2MoeAttention, config, x, positions, allowed):
    """Per-head loop: fused qkv rows [q | k | v], per-head RMSNorm, partial RoPE, kv head h //
    groups, masked softmax."""
    heads, kv, d = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    qkv = x @ attn.query_key_value.weight.T  # [B, S, (H + 2KV) d]
    q = qkv[..., : heads * d].unflatten(-1, (heads, d)).transpose(1, 2)
    k = qkv[..., heads * d : (heads + kv) * d].unflatten(-1, (kv, d)).transpose(1, 2)
    v = qkv[..., (heads + kv) * d :].unflatten(-1, (kv, d)).transpose(1, 2)

    def rms(t, w):
        return w * t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + config.rms_norm_eps)

    q, k = rms(q, attn.query_layernorm.weight), rms(k, attn.key_layernorm.weight)
    q = reference_rope(q, positions, config.rope_theta, config.rotary_dim)
    k = reference_rope(k, positions, config.rope_theta, config.rotary_dim)
    outs = []
    for h in range(heads):
        g = h // (heads // kv)
        scores = q[:, h] @ k[:, g].transpose(-1, -2) / math.sqrt(d)
        scores = scores.masked_fill(~allowed, float("-inf"))
        outs.append(torch.softmax(scores, dim=-1) @ v[:, g])
    return torch.cat(outs, dim=-1) @ attn.dense.weight.T


def test_attention_matches_a_per_head_reference_with_gqa_and_a_mask():
    model = make_model(seed=7)
    config, attn = model.config, model.model.layers[0].attention
    x = torch.randn(2, 6, 64, generator=torch.Generator().manual_seed(8))
    positions = torch.tensor([[0, 1, 2, 3, 4, 5], [5, 2, 9, 0, 1, 7]])
    allowed = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(9)) < 0.6
    allowed |= torch.eye(6, dtype=torch.bool)
    with torch.no_grad():
        cos_sin = model.model.rotary_emb(positions, torch.float32)
        got = attn(x, cos_sin, allowed[:, None])
        want = reference_attention(attn, config, x, positions, allowed)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------------
# Mask contract on the full model


def logits(model, ids, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, **kwargs).logits


def assert_same_model(loaded, model, ids) -> None:
    """Bit-identical state dicts and logits equal up to BLAS summation order (loaded tensors are
    memory-mapped safetensors slices with another alignment, which changes the CPU kernels'
    accumulation order by ~1 ulp)."""
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids), atol=1e-5, rtol=0)


def test_no_mask_is_full_bidirectional_attention():
    model, ids = make_model(), random_ids(2, 10)
    full = logits(model, ids)
    assert full.dtype == torch.float32 and full.shape == (2, 10, VOCAB)
    all_true = torch.ones(2, 1, 10, 10, dtype=torch.bool)
    torch.testing.assert_close(logits(model, ids, attention_mask=all_true), full, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        logits(model, ids, attention_mask=torch.zeros(1, 1, 10, 10)), full, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        logits(model, ids, attention_mask=torch.ones(2, 10)), full, atol=1e-5, rtol=0
    )
    causal = torch.ones(10, 10, dtype=torch.bool).tril()[None, None]
    assert (
        logits(model, ids, attention_mask=causal)[:, :-1] - full[:, :-1]
    ).abs().max() > 1e-2  # mask is used


def test_two_dim_padding_mask_equals_the_four_dim_key_padding_mask():
    model, ids = make_model(), random_ids(2, 10)
    valid = torch.ones(2, 10, dtype=torch.long)
    valid[0, 7:] = 0
    valid[1, 4:] = 0
    key_padding = valid.bool()[:, None, None, :].expand(2, 1, 10, 10)
    two_d = logits(model, ids, attention_mask=valid)
    torch.testing.assert_close(
        two_d, logits(model, ids, attention_mask=key_padding), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        two_d, logits(model, ids, attention_mask={"full_attention": key_padding}), atol=1e-5, rtol=0
    )
    additive = torch.zeros(2, 1, 10, 10).masked_fill(~key_padding, torch.finfo(torch.float32).min)
    torch.testing.assert_close(
        two_d, logits(model, ids, attention_mask=additive), atol=1e-5, rtol=0
    )
    # padding is only on keys: a real token's logits do not depend on the padded tokens
    changed = ids.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % VOCAB
    torch.testing.assert_close(
        logits(model, changed, attention_mask=valid)[0, :7], two_d[0, :7], atol=1e-5, rtol=0
    )


def test_fully_masked_rows_stay_finite_and_do_not_disturb_real_rows():
    model, ids = make_model(), random_ids(2, 9)
    valid = torch.ones(2, 9, dtype=torch.bool)
    valid[1, 5:] = False
    pair = (
        valid[:, None, :, None] & valid[:, None, None, :]
    )  # TIDE: rows and columns of pads masked
    tide_mask = torch.zeros(2, 1, 9, 9).masked_fill(~pair, float("-inf"))
    reference = logits(model, ids, attention_mask=valid.long())
    for mask in (tide_mask, pair, tide_mask.bfloat16()):
        out = logits(model, ids, attention_mask=mask)
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out[1, :5], reference[1, :5], atol=1e-4, rtol=0)
        torch.testing.assert_close(out[0], reference[0], atol=1e-4, rtol=0)
    bf16 = make_model().to(torch.bfloat16)
    out = logits(bf16, ids, attention_mask=tide_mask)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_block_causal_mask_keeps_earlier_blocks_independent_of_later_ones():
    model, block = make_model(), 4
    ids = random_ids(1, 12)
    q = torch.arange(12)
    block_causal = (q[None, :] // block <= q[:, None] // block)[None, None]
    later = ids.clone()
    later[0, 8:] = (later[0, 8:] + 7) % VOCAB
    a = logits(model, ids, attention_mask=block_causal)
    b = logits(model, later, attention_mask=block_causal)
    torch.testing.assert_close(a[:, :8], b[:, :8], atol=1e-6, rtol=0)
    assert (a[:, 8:] - b[:, 8:]).abs().max() > 1e-2
    full_a, full_b = logits(model, ids), logits(model, later)
    assert (
        full_a[:, :8] - full_b[:, :8]
    ).abs().max() > 1e-2  # without the mask the change leaks back


def test_position_ids_are_used_permutation_equivariance():
    model, ids = make_model(), random_ids(1, 10)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(2))
    base = logits(model, ids)
    torch.testing.assert_close(
        logits(model, ids[:, perm], position_ids=perm[None]), base[:, perm], atol=1e-5, rtol=0
    )
    assert (
        logits(model, ids[:, perm]) - base[:, perm]
    ).abs().max() > 1e-2  # default positions differ


def test_labels_give_unshifted_cross_entropy_and_bad_masks_fail_clearly():
    model, ids = make_model(), random_ids(2, 6)
    labels = ids.clone()
    labels[:, :2] = -100
    out = model(input_ids=ids, labels=labels)
    manual = F.cross_entropy(out.logits[:, 2:].reshape(-1, VOCAB), ids[:, 2:].reshape(-1))
    torch.testing.assert_close(out.loss, manual)
    with pytest.raises(ValueError, match="4-D attention_mask"):
        model(input_ids=ids, attention_mask=torch.ones(2, 1, 5, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="3-D"):
        model(input_ids=ids, attention_mask=torch.ones(2, 6, 6))


def test_model_trains_gradients_reach_router_and_experts():
    model = make_model().train()
    ids = random_ids(2, 8)
    model(input_ids=ids, labels=ids).loss.backward()
    moe = model.model.layers[1].mlp
    assert moe.gate.weight.grad.abs().sum() > 0
    assert sum(e.down_proj.weight.grad is not None for e in moe.experts) >= 2


# --------------------------------------------------------------------------------------------------
# transformers integration


def test_save_pretrained_round_trip_gives_identical_logits(tmp_path):
    model, ids = make_model(), random_ids(2, 8)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert type(loaded) is LLaDA2MoeModelLM
    assert (
        loaded.model.layers[1].mlp.gate.expert_bias.abs().sum() > 0
    )  # the non-zero buffer was saved and loaded
    assert_same_model(loaded, model, ids)


def test_hub_style_config_with_auto_map_loads_without_trust_remote_code(tmp_path):
    model, ids = make_model(), random_ids(1, 8)
    model.save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = ["LLaDA2MoeModelLM"]
    config[
        "auto_map"
    ] = {  # as on the hub; the .py files are absent, so running remote code would fail
        "AutoConfig": "configuration_llada2_moe.LLaDA2MoeConfig",
        "AutoModel": "modeling_llada2_moe.LLaDA2MoeModel",
        "AutoModelForCausalLM": "modeling_llada2_moe.LLaDA2MoeModelLM",
    }
    config_path.write_text(json.dumps(config))
    assert type(AutoConfig.from_pretrained(tmp_path)) is LLaDA2MoeConfig
    for auto_class, kwargs in [
        (AutoModelForMaskedLM, {}),
        (AutoModelForCausalLM, {}),
        (AutoModelForCausalLM, {"trust_remote_code": True}),
    ]:
        loaded = auto_class.from_pretrained(tmp_path, **kwargs)
        assert type(loaded) is LLaDA2MoeModelLM
        assert_same_model(loaded, model, ids)
    assert type(AutoModel.from_pretrained(tmp_path)) is LLaDA2MoeModel


def test_expert_bias_update_balances_a_collapsed_router():
    """Aux-loss-free balancing: overloaded experts get a lower bias, idle experts a higher one; after
    repeated updates the load spreads over more experts. Eval mode counts nothing."""
    from tide.training.trainers import ExpertBiasBalancer

    model = make_model().train()
    gate = model.model.layers[1].mlp.gate
    with torch.no_grad():
        gate.expert_bias.zero_()
        gate.expert_bias[:4] = 2.0  # experts 0-3 (group 0) take every token
    x = torch.randn(256, gate.weight.shape[1], generator=torch.Generator().manual_seed(0))

    def load_of() -> torch.Tensor:
        gate.expert_load.zero_()
        gate(x)
        load = gate.expert_load.clone()
        gate.expert_load.zero_()
        return load

    before = load_of()
    gate(x)
    ExpertBiasBalancer(rate=0.05).on_step_end(None, None, None, model=model)
    expected = torch.zeros_like(gate.expert_bias) + 0.05 * torch.sign(before.mean() - before)
    expected[:4] += 2.0
    torch.testing.assert_close(gate.expert_bias, expected)
    assert gate.expert_load.sum() == 0  # reset after the update
    for _ in range(60):
        gate(x)
        gate.update_expert_bias(0.05)
    after = load_of()
    assert (after > 0).sum() > (before > 0).sum()
    assert after.max() < before.max()
    model.eval()
    gate(x)
    assert gate.expert_load.sum() == 0
    assert not any("expert_load" in k for k in model.state_dict())  # never saved
