"""Factory functions for the small teacher configs: unit-test sizes and tiny-world sizes.

Sizes (parameters, untied embeddings; ids taken from our tokenizers):

============================  ==========  ==========================================================
config                        parameters  shape
============================  ==========  ==========================================================
``llada2_unit_config()``         146,304  vocab 320, hidden 64, 2 layers (dense + MoE), top-2 of 8
``llada2_tiny_world_config``   1,817,984  vocab 1024, hidden 128, 4 layers, 16 experts top-4
                                          (933,248 active per token)
``wedlm_unit_config()``          115,072  vocab 320, hidden 64, 2 layers
``wedlm_tiny_world_config``    2,017,344  vocab 1024, hidden 192, 4 layers, head_dim 48
============================  ==========  ==========================================================
(LLaDA2 counts exclude the ``expert_bias`` buffers: 8 resp. 48 floats.)
"""

from __future__ import annotations

from dataclasses import dataclass

from tide.models.llada2 import LLaDA2MoeConfig
from tide.models.wedlm import WeDLMConfig


@dataclass(frozen=True)
class ParameterCount:
    """Trainable parameters of a model: all of them, and those a single token passes through (MoE:
    top-k experts)."""

    total: int
    active: int


def _check_special_ids(vocab_size: int, **ids: int | None) -> None:
    """Raise ``ValueError`` naming any special id outside ``[0, vocab_size)``."""
    bad = {
        name: value
        for name, value in ids.items()
        if value is not None and not 0 <= value < vocab_size
    }
    if bad:
        raise ValueError(f"special ids outside the vocabulary [0, {vocab_size}): {bad}")


def llada2_unit_config(
    vocab_size: int = 320,
    *,
    pad_token_id: int | None = None,
    mask_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> LLaDA2MoeConfig:
    """LLaDA2 config for unit tests (146k parameters at vocab 320): layer 0 dense, layer 1 MoE.

    Defaults: ``mask = vocab_size - 1``, ``pad = vocab_size - 2``, ``eos = pad`` (LLaDA2 pads with
    eos).
    """
    pad = vocab_size - 2 if pad_token_id is None else pad_token_id
    return _llada2_config(
        vocab_size=vocab_size,
        pad_token_id=pad,
        mask_token_id=vocab_size - 1 if mask_token_id is None else mask_token_id,
        eos_token_id=pad if eos_token_id is None else eos_token_id,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_experts=8,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        n_group=4,
        topk_group=2,
    )


def llada2_tiny_world_config(
    vocab_size: int = 1024,
    *,
    pad_token_id: int,
    mask_token_id: int,
    eos_token_id: int | None = None,
) -> LLaDA2MoeConfig:
    """Tiny-world teacher-A (1.82M parameters, 0.93M active at vocab 1024): 4 layers (1 dense + 3
    MoE), 16 experts in 4 groups, top-4 from the best 2 groups, one shared expert. ``eos`` defaults
    to ``pad``."""
    return _llada2_config(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        mask_token_id=mask_token_id,
        eos_token_id=pad_token_id if eos_token_id is None else eos_token_id,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        num_experts=16,
        num_experts_per_tok=4,
        moe_intermediate_size=64,
        n_group=4,
        topk_group=2,
    )


def _llada2_config(
    *, vocab_size: int, pad_token_id: int, mask_token_id: int, eos_token_id: int, **sizes
) -> LLaDA2MoeConfig:
    """Small LLaDA2 config: the given sizes plus the LLaDA2.0-mini choices shared by all sizes."""
    _check_special_ids(
        vocab_size,
        pad_token_id=pad_token_id,
        mask_token_id=mask_token_id,
        eos_token_id=eos_token_id,
    )
    return LLaDA2MoeConfig(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        mask_token_id=mask_token_id,
        eos_token_id=eos_token_id,
        first_k_dense_replace=1,
        partial_rotary_factor=0.5,
        rope_theta=600000.0,
        num_shared_experts=1,
        routed_scaling_factor=2.5,
        use_qk_norm=True,
        use_qkv_bias=False,
        use_bias=False,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        max_position_embeddings=512,
        **sizes,
    )


def wedlm_unit_config(
    vocab_size: int = 320,
    *,
    pad_token_id: int | None = None,
    mask_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> WeDLMConfig:
    """WeDLM config for unit tests (115k parameters at vocab 320).

    Defaults: ``mask = vocab_size - 1``, ``pad = eos = vocab_size - 2``.
    """
    pad = vocab_size - 2 if pad_token_id is None else pad_token_id
    return _wedlm_config(
        vocab_size=vocab_size,
        pad_token_id=pad,
        mask_token_id=vocab_size - 1 if mask_token_id is None else mask_token_id,
        eos_token_id=pad if eos_token_id is None else eos_token_id,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    )


def wedlm_tiny_world_config(
    vocab_size: int = 1024,
    *,
    pad_token_id: int,
    mask_token_id: int,
    eos_token_id: int | None = None,
) -> WeDLMConfig:
    """Tiny-world teacher-B (2.02M parameters at vocab 1024): hidden 192, 4 layers, 4/2 heads of 48,
    FFN 512. ``eos`` defaults to ``pad``."""
    return _wedlm_config(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        mask_token_id=mask_token_id,
        eos_token_id=pad_token_id if eos_token_id is None else eos_token_id,
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=48,
    )


def _wedlm_config(
    *, vocab_size: int, pad_token_id: int, mask_token_id: int, eos_token_id: int, **sizes
) -> WeDLMConfig:
    """Small WeDLM config: the given sizes plus the WeDLM-8B choices shared by all sizes."""
    _check_special_ids(
        vocab_size,
        pad_token_id=pad_token_id,
        mask_token_id=mask_token_id,
        eos_token_id=eos_token_id,
    )
    return WeDLMConfig(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        mask_token_id=mask_token_id,
        eos_token_id=eos_token_id,
        attention_bias=False,
        qk_norm=True,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        max_position_embeddings=512,
        **sizes,
    )


def llada2_parameter_count(config: LLaDA2MoeConfig) -> ParameterCount:
    """Analytic parameter count of ``LLaDA2MoeModelLM(config)`` (buffers excluded)."""
    d, head = config.hidden_size, config.head_dim
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    qkv_bias = (heads + 2 * kv) * head if config.use_qkv_bias else 0
    attention = (
        (heads + 2 * kv) * head * d + qkv_bias + heads * head * d + (d if config.use_bias else 0)
    )
    attention += 2 * head if config.use_qk_norm else 0
    per_layer = attention + 2 * d  # + input / post-attention norms
    dense_ffn = 3 * d * config.intermediate_size
    expert = 3 * d * config.moe_intermediate_size
    shared_width = config.moe_shared_expert_intermediate_size or config.moe_intermediate_size * (
        config.num_shared_experts or 0
    )
    shared = 3 * d * shared_width if config.num_shared_experts else 0
    router = config.num_experts * d
    n_dense = config.first_k_dense_replace
    n_moe = config.num_hidden_layers - n_dense
    embeddings = (
        config.vocab_size * d * (1 if config.tie_word_embeddings else 2) + d
    )  # + final norm
    common = (
        embeddings
        + config.num_hidden_layers * per_layer
        + n_dense * dense_ffn
        + n_moe * (router + shared)
    )
    return ParameterCount(
        total=common + n_moe * config.num_experts * expert,
        active=common + n_moe * config.num_experts_per_tok * expert,
    )


def wedlm_parameter_count(config: WeDLMConfig) -> int:
    """Analytic parameter count of ``WeDLMForCausalLM(config)``."""
    d, head = config.hidden_size, config.head_dim
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    attention = (2 * heads + 2 * kv) * head * d + 2 * head
    if config.attention_bias:
        attention += (heads + 2 * kv) * head + d
    per_layer = attention + 3 * d * config.intermediate_size + 2 * d
    embeddings = config.vocab_size * d * (1 if config.tie_word_embeddings else 2) + d
    return embeddings + config.num_hidden_layers * per_layer
