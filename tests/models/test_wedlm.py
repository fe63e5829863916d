"""Teacher-B (WeDLM = Qwen3 architecture): equivalence with Qwen3, mask pass-through, HF round
trips, config sizes."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from tide.models.configs import wedlm_parameter_count, wedlm_tiny_world_config, wedlm_unit_config
from tide.models.wedlm import WEDLM_MASK_TOKEN_ID, WeDLMConfig, WeDLMForCausalLM

torch.set_num_threads(1)

VOCAB = 320


def make_model(seed: int = 0) -> WeDLMForCausalLM:
    """Unit-size WeDLM with weights of std 0.2 (attention far from uniform)."""
    torch.manual_seed(seed)
    config = wedlm_unit_config()
    config.initializer_range = 0.2
    return WeDLMForCausalLM(config).eval()


def random_ids(batch: int, seq: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def logits(model, ids, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, **kwargs).logits


def bd3lm_allowed(n: int, block: int) -> torch.Tensor:
    """Bool ``[2n, 2n]`` BD3LM mask over ``[x0 ; xt]`` (clean first): same stream and block, xt ->
    earlier x0 blocks, x0 -> same or earlier x0 blocks."""
    idx = torch.arange(2 * n)
    clean, blk = idx < n, (idx % n) // block
    same = (clean[:, None] == clean[None, :]) & (blk[:, None] == blk[None, :])
    noisy_to_clean = ~clean[:, None] & clean[None, :] & (blk[None, :] < blk[:, None])
    clean_to_clean = clean[:, None] & clean[None, :] & (blk[None, :] <= blk[:, None])
    return same | noisy_to_clean | clean_to_clean


def test_wedlm_equals_qwen3_with_the_same_weights():
    model, ids = make_model(), random_ids(2, 12)
    qwen = Qwen3ForCausalLM(
        Qwen3Config(**{k: v for k, v in model.config.to_dict().items() if k != "model_type"})
    )
    qwen.load_state_dict(model.state_dict(), strict=True)
    qwen.eval()
    assert torch.equal(logits(qwen, ids), logits(model, ids))
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(3))[None]
    assert torch.equal(logits(qwen, ids, position_ids=perm), logits(model, ids, position_ids=perm))
    assert (
        logits(model, ids, position_ids=perm) - logits(model, ids)
    ).abs().max() > 1e-2  # positions matter


def test_no_mask_is_causal():
    model, ids = make_model(), random_ids(1, 10)
    base = logits(model, ids)
    causal = torch.ones(10, 10, dtype=torch.bool).tril()[None, None]
    torch.testing.assert_close(logits(model, ids, attention_mask=causal), base, atol=1e-5, rtol=0)
    later = ids.clone()
    later[0, 6:] = (later[0, 6:] + 5) % VOCAB
    torch.testing.assert_close(logits(model, later)[:, :6], base[:, :6], atol=1e-6, rtol=0)


def test_dict_bool_and_float_four_dim_masks_agree_and_replace_the_causal_mask():
    model, n = make_model(), 8
    ids = random_ids(2, 2 * n)
    allowed = bd3lm_allowed(n, block=4)[None, None]
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    as_bool = logits(model, ids, attention_mask=allowed)
    as_float = logits(model, ids, attention_mask=additive)
    as_dict = logits(
        model, ids, attention_mask={"full_attention": additive, "sliding_attention": additive}
    )
    torch.testing.assert_close(as_float, as_bool, atol=1e-5, rtol=0)
    torch.testing.assert_close(as_dict, as_bool, atol=1e-5, rtol=0)
    # bidirectional inside a block: the first clean position sees its block-mates, unlike under the
    # causal mask
    assert (as_bool[:, 0] - logits(model, ids)[:, 0]).abs().max() > 1e-2


def test_four_dim_masks_reach_the_attention_kernel_unchanged(monkeypatch):
    seen = []
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]

    def recording_sdpa(module, query, key, value, attention_mask, **kwargs):
        seen.append(attention_mask)
        return sdpa(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS._global_mapping, "sdpa", recording_sdpa)
    model, ids = make_model(), random_ids(1, 8)
    allowed = bd3lm_allowed(4, block=2)[None, None]
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    for mask in (allowed, additive):
        seen.clear()
        logits(model, ids, attention_mask=mask)
        assert len(seen) == model.config.num_hidden_layers and all(m is mask for m in seen)


def test_save_pretrained_round_trip_and_auto_map_without_trust_remote_code(tmp_path):
    model, ids = make_model(), random_ids(2, 9)
    model.save_pretrained(tmp_path)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    assert config["model_type"] == "wedlm" and config["architectures"] == ["WeDLMForCausalLM"]
    config["auto_map"] = {  # as on the hub; no .py files present
        "AutoConfig": "configuration_wedlm.WeDLMConfig",
        "AutoModelForCausalLM": "modeling_wedlm.WeDLMForCausalLM",
    }
    config_path.write_text(json.dumps(config))
    assert type(AutoConfig.from_pretrained(tmp_path)) is WeDLMConfig
    for kwargs in ({}, {"trust_remote_code": True}):
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path, **kwargs)
        assert type(loaded) is WeDLMForCausalLM and loaded.config.mask_token_id == VOCAB - 1
        state, want = loaded.state_dict(), model.state_dict()
        assert all(torch.equal(state[k], want[k]) for k in want) and state.keys() == want.keys()
        # memory-mapped weights change the CPU kernels' accumulation order by ~1 ulp
        torch.testing.assert_close(logits(loaded, ids), logits(model, ids), atol=1e-5, rtol=0)


def test_config_defaults_and_sizes():
    assert (
        WeDLMConfig().mask_token_id
        == WEDLM_MASK_TOKEN_ID
        == WeDLMConfig(mask_token_id=None).mask_token_id
    )
    assert WeDLMConfig(rope_theta=1e6).rope_parameters["rope_theta"] == 1e6
    with pytest.raises(ValueError, match="qk_norm"):
        WeDLMConfig(qk_norm=False)
    unit = wedlm_unit_config()
    assert (
        sum(p.numel() for p in WeDLMForCausalLM(unit).parameters())
        == 115_072
        == wedlm_parameter_count(unit)
    )
    tiny = wedlm_tiny_world_config(1024, pad_token_id=0, mask_token_id=3)
    assert (
        wedlm_parameter_count(tiny)
        == 2_017_344
        == sum(p.numel() for p in WeDLMForCausalLM(tiny).parameters())
    )
    eight_b = WeDLMConfig(
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
    )
    assert wedlm_parameter_count(eight_b) == 8_190_735_360  # teachers.md §3
    with pytest.raises(ValueError, match="mask_token_id"):
        wedlm_tiny_world_config(1024, pad_token_id=0, mask_token_id=1024)
