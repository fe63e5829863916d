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

The paper's models at their real shapes, with a chosen depth (random weights; the real-shape smoke
test ``tests/test_paper_shapes.py`` builds them with a few layers):

================================  ===============  ==============================================
config (full depth)               parameters       shape
================================  ===============  ==============================================
``llada2_paper_config(20)``       16,255,643,392   LLaDA2.0-mini: vocab 157184, hidden 2048, layer 0
                                                   dense, 19 MoE layers of 256 experts (top-8 of the
                                                   best 4 of 8 groups) + 1 shared
``wedlm_paper_config(36)``         8,190,735,360   WeDLM-8B: vocab 151936, hidden 4096, 32/8 heads
``student_paper_config(28)``         596,049,920   Qwen3-0.6B (tied): vocab 151936, hidden 1024
================================  ===============  ==============================================
(teachers.md §3. The LLaDA2 total is what its checkpoint holds, :func:`llada2_checkpoint_count`:
16,255,638,528 parameters + the 19 x 256 ``expert_bias`` floats.)
"""

from __future__ import annotations

from dataclasses import dataclass

from tide.models.llada2 import LLADA2_EOS_TOKEN_ID, LLADA2_MASK_TOKEN_ID, LLaDA2MoeConfig
from tide.models.wedlm import WEDLM_EOS_TOKEN_ID, WEDLM_MASK_TOKEN_ID, WeDLMConfig

# Full depths and published parameter totals of the paper's models (teachers.md §1-§3, bd3lm.md §1).
LLADA2_MINI_LAYERS = 20
LLADA2_MINI_PARAMETERS = 16_255_643_392
WEDLM_8B_LAYERS = 36
WEDLM_8B_PARAMETERS = 8_190_735_360
QWEN3_06B_LAYERS = 28
QWEN3_06B_PARAMETERS = 596_049_920  # tied embeddings: the 151936 x 1024 matrix once
QWEN3_VOCAB_SIZE = 151936  # embedding rows of Qwen3 and WeDLM (the tokenizers use 151,669 / 151,670)
QWEN3_PAD_TOKEN_ID = 151643  # "<|endoftext|>"
QWEN3_EOS_TOKEN_ID = 151645  # "<|im_end|>", the student's eos


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
    *, vocab_size: int, pad_token_id: int, mask_token_id: int, eos_token_id: int,
    max_position_embeddings: int = 512, **sizes
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
        max_position_embeddings=max_position_embeddings,
        **sizes,
    )


def llada2_paper_config(
    num_hidden_layers: int = 2,
    *,
    vocab_size: int = 157184,
    pad_token_id: int = LLADA2_EOS_TOKEN_ID,
    mask_token_id: int = LLADA2_MASK_TOKEN_ID,
    eos_token_id: int | None = None,
) -> LLaDA2MoeConfig:
    """LLaDA2.0-mini's shapes (teachers.md §1.1) with ``num_hidden_layers`` layers (full depth:
    :data:`LLADA2_MINI_LAYERS` = 20): vocab 157184, hidden 2048, 16 query / 4 kv heads of 128,
    partial RoPE (64 dims, theta 600000), layer 0 dense (FFN 5120), every later layer MoE: 256
    experts of width 512, top-8 from the best 4 of 8 groups, one shared expert, scaling 2.5.
    Untied. Ids default to LLaDA2's (pad = eos 156892, mask 156895); ``eos`` defaults to ``pad``."""
    if num_hidden_layers < 1:
        raise ValueError(f"num_hidden_layers must be >= 1, got {num_hidden_layers}")
    return _llada2_config(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        mask_token_id=mask_token_id,
        eos_token_id=pad_token_id if eos_token_id is None else eos_token_id,
        max_position_embeddings=32768,
        hidden_size=2048,
        intermediate_size=5120,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=16,
        num_key_value_heads=4,
        head_dim=128,
        num_experts=256,
        num_experts_per_tok=8,
        moe_intermediate_size=512,
        n_group=8,
        topk_group=4,
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
    *, vocab_size: int, pad_token_id: int, mask_token_id: int, eos_token_id: int,
    max_position_embeddings: int = 512, **sizes
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
        max_position_embeddings=max_position_embeddings,
        **sizes,
    )


def wedlm_paper_config(
    num_hidden_layers: int = 1,
    *,
    vocab_size: int = QWEN3_VOCAB_SIZE,
    pad_token_id: int = WEDLM_EOS_TOKEN_ID,
    mask_token_id: int = WEDLM_MASK_TOKEN_ID,
    eos_token_id: int | None = None,
) -> WeDLMConfig:
    """WeDLM-8B's shapes (teachers.md §2.1) with ``num_hidden_layers`` layers (full depth:
    :data:`WEDLM_8B_LAYERS` = 36): vocab 151936, hidden 4096, FFN 12288, 32 query / 8 kv heads of
    128, qk-norm, RoPE theta 1e6, untied. Ids default to WeDLM's (pad = eos 151643, mask 151665);
    ``eos`` defaults to ``pad``."""
    if num_hidden_layers < 1:
        raise ValueError(f"num_hidden_layers must be >= 1, got {num_hidden_layers}")
    return _wedlm_config(
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        mask_token_id=mask_token_id,
        eos_token_id=pad_token_id if eos_token_id is None else eos_token_id,
        max_position_embeddings=16384,
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
    )


def student_paper_config(
    num_hidden_layers: int = 2,
    *,
    vocab_size: int = QWEN3_VOCAB_SIZE,
    pad_token_id: int = QWEN3_PAD_TOKEN_ID,
    eos_token_id: int = QWEN3_EOS_TOKEN_ID,
    a2d: bool = True,
):
    """Qwen3-0.6B's shapes (bd3lm.md §1) with ``num_hidden_layers`` layers (full depth:
    :data:`QWEN3_06B_LAYERS` = 28): vocab 151936, hidden 1024, FFN 3072, 16 query / 8 kv heads of
    128, qk-norm, tied embeddings (``student_config(size="paper")``). ``a2d=True``: the converted
    BD3LM student (``a2d-qwen3``), else the AR ``qwen3``. The mask ``<|mask|>`` (151669) lives in
    the tokenizer only."""
    from tide.models.student import student_config

    if num_hidden_layers < 1:
        raise ValueError(f"num_hidden_layers must be >= 1, got {num_hidden_layers}")
    _check_special_ids(vocab_size, pad_token_id=pad_token_id, eos_token_id=eos_token_id)
    return student_config(vocab_size, pad_token_id, eos_token_id, size="paper", a2d=a2d,
                          max_position_embeddings=40960, num_hidden_layers=num_hidden_layers)


def student_parameter_count(config) -> int:
    """Analytic parameter count of the (a2d-)Qwen3 student of ``config``, the tied head once (the
    same Qwen3 decoder as WeDLM: :func:`wedlm_parameter_count`)."""
    return wedlm_parameter_count(config)


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


def llada2_checkpoint_count(config: LLaDA2MoeConfig) -> int:
    """Elements of the tensors a ``LLaDA2MoeModelLM(config)`` checkpoint holds (what
    :func:`tide.checkpoints.count_parameters` reads from the safetensors headers, and the published
    total counts): the parameters plus each MoE layer's ``expert_bias`` buffer."""
    n_moe = config.num_hidden_layers - config.first_k_dense_replace
    bias = config.num_experts if config.moe_router_enable_expert_bias else 0
    return llada2_parameter_count(config).total + n_moe * bias


def wedlm_parameter_count(config: WeDLMConfig) -> int:
    """Analytic parameter count of ``WeDLMForCausalLM(config)`` (any Qwen3 config; a tied head
    counts once)."""
    d, head = config.hidden_size, config.head_dim
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    attention = (2 * heads + 2 * kv) * head * d + 2 * head
    if config.attention_bias:
        attention += (heads + 2 * kv) * head + d
    per_layer = attention + 3 * d * config.intermediate_size + 2 * d
    embeddings = config.vocab_size * d * (1 if config.tie_word_embeddings else 2) + d
    return embeddings + config.num_hidden_layers * per_layer
