"""Teacher-A: the LLaDA2.0 MoE masked-diffusion LM (model_type ``"llada2_moe"``), written for
transformers 5.x.

The module reproduces the checkpoint layout of ``inclusionAI/LLaDA2.0-mini`` exactly (state-dict
names below), so the hub weights load into it without ``trust_remote_code``; tiny random instances
of the same class are the tiny-world teacher. Importing the module registers the classes with
``AutoConfig``, ``AutoModel``, ``AutoModelForMaskedLM`` and ``AutoModelForCausalLM`` (the hub
``auto_map`` names the latter).

Architecture (pre-norm, no causal mask, logit ``i`` predicts token ``i``, no label shift)::

    model.word_embeddings -> layers -> model.norm -> lm_head -> logits in float32
    layer i: attention, then a dense FFN if i < first_k_dense_replace, else MoE

Attention contract (``attention_mask``):
    * ``None``                   -> full bidirectional attention;
    * 2-D ``[B, K]`` (1 = token) -> key padding only (never causal);
    * 4-D ``[B|1, 1|H, Q, K]``   -> as given: bool (True = attend; integer masks are read as bool)
                                    or additive float;
    * ``{"full_attention": M}``  -> ``M`` (the per-layer-type dict that Qwen-style callers pass).
    A query row that may attend to nothing attends uniformly instead, so pad rows stay finite (never
    NaN).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput

LLADA2_MASK_TOKEN_ID = 156895  # "<|mask|>" of the LLaDA2 tokenizer
LLADA2_EOS_TOKEN_ID = 156892  # "<|endoftext|>", also the pad id


class LLaDA2MoeConfig(PreTrainedConfig):
    """Configuration of LLaDA2 MoE models; defaults are the LLaDA2.0-mini values.

    Stored but hard-wired in the forward pass (as in the reference code): ``score_function``
    (sigmoid), ``norm_topk_prob`` (weights renormalised), ``router_dtype`` (fp32). Stored and
    unused: ``sliding_window``, ``max_window_layers``, ``use_cache``. RoPE accepts ``rope_theta`` /
    ``partial_rotary_factor`` or a ``rope_parameters`` dict (which wins); only the ``"default"``
    rope type is supported. ``mask_token_id`` is not in the hub config.json; its default is the
    LLaDA2 tokenizer's ``<|mask|>``.
    """

    model_type = "llada2_moe"
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["past_key_values"]

    vocab_size: int = 157184
    hidden_size: int = 2048
    intermediate_size: int = 5120
    num_hidden_layers: int = 20
    first_k_dense_replace: int = 1
    num_attention_heads: int = 16
    num_key_value_heads: int = 4
    head_dim: int | None = 128
    hidden_act: str = "silu"
    use_qkv_bias: bool = False
    use_bias: bool = False
    use_qk_norm: bool = True
    rms_norm_eps: float | int = 1e-6
    rope_theta: float | int = 600000.0
    partial_rotary_factor: float | int = 0.5
    rope_parameters: dict | None = None
    max_position_embeddings: int = 32768
    num_experts: int = 256
    num_experts_per_tok: int = 8
    num_shared_experts: int | None = 1
    moe_intermediate_size: int = 512
    moe_shared_expert_intermediate_size: int | None = None
    n_group: int = 8
    topk_group: int = 4
    score_function: str | None = "sigmoid"
    norm_topk_prob: bool = True
    routed_scaling_factor: float | int = 2.5
    moe_router_enable_expert_bias: bool = True
    router_dtype: str | None = "fp32"
    norm_head: bool = False
    embedding_dropout: float | int = 0.0
    attention_dropout: float | int = 0.0
    output_dropout: float | int = 0.0
    sliding_window: int | None = 4096
    max_window_layers: int = 28
    initializer_range: float | int = 0.02
    use_cache: bool = False
    tie_word_embeddings: bool = False
    pad_token_id: int | None = LLADA2_EOS_TOKEN_ID
    eos_token_id: int | list[int] | None = LLADA2_EOS_TOKEN_ID
    bos_token_id: int | None = None
    mask_token_id: int | None = LLADA2_MASK_TOKEN_ID

    def __post_init__(self, **kwargs):
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        super().__post_init__(**kwargs)
        # rope_parameters (filled from rope_theta / partial_rotary_factor when absent) is the single
        # source of truth
        rope = self.rope_parameters or {}
        self.rope_theta = rope.get("rope_theta", self.rope_theta)
        self.partial_rotary_factor = rope.get("partial_rotary_factor", self.partial_rotary_factor)
        check_llada2_config(self)

    @property
    def rotary_dim(self) -> int:
        """Leading head dimensions rotated by RoPE: ``head_dim * partial_rotary_factor``."""
        return int(self.head_dim * self.partial_rotary_factor)


def check_llada2_config(config: LLaDA2MoeConfig) -> None:
    """Raise ``ValueError`` naming the offending keys if the config cannot build a model."""
    rope_type = (config.rope_parameters or {}).get("rope_type", "default")
    problems = []
    if rope_type != "default":
        problems.append(f"rope type {rope_type!r} (only 'default' RoPE is implemented)")
    if config.num_attention_heads % config.num_key_value_heads:
        problems.append("num_attention_heads must be a multiple of num_key_value_heads")
    rotary = config.rotary_dim
    if rotary % 2 or not 0 < rotary <= config.head_dim:
        problems.append(
            f"rotary dim head_dim*partial_rotary_factor={rotary} must be even and in (0, head_dim]"
        )
    if not 0 <= config.first_k_dense_replace <= config.num_hidden_layers:
        problems.append("first_k_dense_replace must lie in [0, num_hidden_layers]")
    if config.first_k_dense_replace < config.num_hidden_layers:  # the model has MoE layers
        n_group = config.n_group or 1
        per_group = config.num_experts // n_group if config.num_experts % n_group == 0 else 0
        if per_group < 2:
            problems.append("num_experts must be a multiple of n_group with >= 2 experts per group")
        elif not 1 <= (config.topk_group or n_group) <= n_group:
            problems.append("topk_group must lie in [1, n_group]")
        elif (config.topk_group or n_group) * per_group < config.num_experts_per_tok:
            problems.append("topk_group * experts per group must be >= num_experts_per_tok")
    if config.norm_head:
        problems.append("norm_head=True is not implemented")
    for key in ("embedding_dropout", "attention_dropout", "output_dropout"):
        if getattr(config, key):
            problems.append(f"{key}={getattr(config, key)} (dropout is not implemented)")
    if problems:
        raise ValueError("invalid LLaDA2MoeConfig: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------------
# Building blocks


class LLaDA2MoeRMSNorm(nn.Module):
    """RMSNorm in float32 over the last dim: ``weight * cast(x * rsqrt(mean(x^2) + eps))``."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def rotary_inv_freq(theta: float, rotary_dim: int) -> torch.Tensor:
    """``inv_freq[i] = theta ** (-2i / rotary_dim)`` for ``i < rotary_dim / 2``; float32
    ``[rotary_dim // 2]``."""
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim
    return 1.0 / (theta**exponents)


class LLaDA2MoeRotaryEmbedding(nn.Module):
    """cos/sin tables of the partial RoPE for given positions."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        self.theta = float(config.rope_theta)
        self.rotary_dim = config.rotary_dim
        self.inv_freq = nn.Buffer(rotary_inv_freq(self.theta, self.rotary_dim), persistent=False)

    @torch.no_grad()
    def forward(
        self, position_ids: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """position_ids ``[B|1, S]`` -> (cos, sin), each ``[B|1, S, rotary_dim]`` in ``dtype``
        (computed in fp32)."""
        angles = position_ids[..., None].float() * self.inv_freq.float().to(position_ids.device)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` over the last dimension (halves of equal width)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_partial_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``R = cos.shape[-1]`` dims of every head, leave dims ``>= R`` untouched.

    x ``[B, H, S, D]``; cos, sin ``[B|1, S, R]`` -> ``[B, H, S, D]``.
    """
    rotary = cos.shape[-1]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    x_rot, x_pass = x[..., :rotary], x[..., rotary:]
    x_rot = x_rot * cos + rotate_half(x_rot) * sin
    return torch.cat((x_rot, x_pass), dim=-1)


def prepare_attention_mask(
    attention_mask: torch.Tensor | dict | None,
    batch: int,
    q_len: int,
    k_len: int,
    dtype: torch.dtype,
) -> torch.Tensor | None:
    """Turn any accepted mask form into an SDPA ``attn_mask`` (see the module docstring), NaN-safe.

    Returns ``None`` (attend everywhere), a bool mask ``[B|1, 1|H, Q|1, K]`` (True = attend) with
    empty rows opened up, or an additive mask in ``dtype`` with ``-inf`` replaced by
    ``finfo(dtype).min``.
    """
    if isinstance(attention_mask, dict):
        if "full_attention" not in attention_mask:
            raise ValueError(
                "attention_mask dict needs a 'full_attention' entry, "
                f"got keys {sorted(attention_mask)}"
            )
        attention_mask = attention_mask["full_attention"]
    if attention_mask is None:
        return None
    if attention_mask.dim() == 2:
        if tuple(attention_mask.shape) != (batch, k_len):
            raise ValueError(
                f"2-D attention_mask must be [batch, seq] = {[batch, k_len]}, "
                f"got {list(attention_mask.shape)}"
            )
        mask = attention_mask.bool()[:, None, None, :]  # key padding, [B, 1, 1, K]
    elif attention_mask.dim() == 4:
        b, _, q, k = attention_mask.shape
        if b not in (1, batch) or q not in (1, q_len) or k != k_len:
            raise ValueError(
                f"4-D attention_mask must be [batch|1, 1|heads, {q_len}, {k_len}], "
                f"got {list(attention_mask.shape)}"
            )
        if attention_mask.is_floating_point():
            return attention_mask.to(dtype).clamp_min(torch.finfo(dtype).min)
        mask = attention_mask.bool()
    else:
        raise ValueError(
            "attention_mask must be None, 2-D [batch, seq] or 4-D [batch, 1, q, k]; "
            f"got {attention_mask.dim()}-D"
        )
    return mask | ~mask.any(
        dim=-1, keepdim=True
    )  # a row with no allowed key attends everywhere (finite)


class LLaDA2MoeAttention(nn.Module):
    """GQA self-attention with fused ``query_key_value``, per-head q/k RMSNorm, partial RoPE and
    SDPA."""

    def __init__(self, config: LLaDA2MoeConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        width = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        self.query_key_value = nn.Linear(config.hidden_size, width, bias=config.use_qkv_bias)
        self.dense = nn.Linear(
            self.num_heads * self.head_dim, config.hidden_size, bias=config.use_bias
        )
        if config.use_qk_norm:
            self.query_layernorm = LLaDA2MoeRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.key_layernorm = LLaDA2MoeRMSNorm(self.head_dim, eps=config.rms_norm_eps)
        else:
            self.query_layernorm = self.key_layernorm = None

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """hidden ``[B, S, D]``, cos/sin ``[B|1, S, R]``, mask from ``prepare_attention_mask`` ->
        ``[B, S, D]``."""
        batch, seq, _ = hidden_states.shape
        qkv = self.query_key_value(hidden_states).view(batch, seq, -1, self.head_dim)
        q, k, v = qkv.split([self.num_heads, self.num_kv_heads, self.num_kv_heads], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, S, head_dim]
        if self.query_layernorm is not None:
            q, k = self.query_layernorm(q), self.key_layernorm(k)
        cos, sin = position_embeddings
        q, k = apply_partial_rotary(q, cos, sin), apply_partial_rotary(k, cos, sin)
        groups = self.num_heads // self.num_kv_heads  # query head h reads kv head h // groups
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask, scale=1.0 / math.sqrt(self.head_dim)
        )
        return self.dense(out.transpose(1, 2).reshape(batch, seq, -1))


class LLaDA2MoeMLP(nn.Module):
    """Gated FFN ``down(act(gate(x)) * up(x))``, used for the dense layers, each expert and the
    shared experts."""

    def __init__(self, config: LLaDA2MoeConfig, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LLaDA2MoeRouter(nn.Module):
    """Grouped sigmoid router (fp32). ``weight`` ``[E, D]``; buffer ``expert_bias`` ``[E]`` steers
    selection only."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.n_group = config.n_group or 1
        self.topk_group = config.topk_group or self.n_group
        self.scaling = float(config.routed_scaling_factor)
        self.weight = nn.Parameter(torch.empty(config.num_experts, config.hidden_size))
        if config.moe_router_enable_expert_bias:
            self.expert_bias = nn.Buffer(torch.zeros(config.num_experts, dtype=torch.float32))
        else:
            self.expert_bias = None
        # tokens routed to each expert since the last bias update (training only; not saved)
        self.expert_load = nn.Buffer(torch.zeros(config.num_experts), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``[T, D]`` -> (expert ids ``[T, k]`` int64, routing weights ``[T, k]`` float32).

        ``s = sigmoid(x W^T)``; selection on ``s + bias``: keep the ``topk_group`` groups with the
        largest sum of their two best biased scores, then the top-k experts inside them; weights
        ``= scaling * s / sum(s)`` over the selected experts (un-biased scores).
        """
        scores = torch.sigmoid(F.linear(x.float(), self.weight.float()))  # [T, E]
        biased = scores if self.expert_bias is None else scores + self.expert_bias.float()
        tokens, experts = biased.shape
        grouped = biased.view(tokens, self.n_group, experts // self.n_group)
        group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)  # [T, G]
        kept_groups = group_scores.topk(self.topk_group, dim=-1).indices  # [T, topk_group]
        group_keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, kept_groups, True)
        candidates = grouped.masked_fill(~group_keep[..., None], float("-inf")).view(
            tokens, experts
        )
        expert_ids = candidates.topk(self.top_k, dim=-1).indices  # [T, k]
        if self.training:
            self.expert_load += torch.bincount(expert_ids.flatten(), minlength=experts)
        weights = scores.gather(1, expert_ids)
        weights = self.scaling * weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return expert_ids, weights


    @torch.no_grad()
    def update_expert_bias(self, rate: float) -> None:
        """Auxiliary-loss-free balancing (how Ling / LLaDA2 are trained): after an optimizer step,
        ``expert_bias += rate * sign(mean load - load)`` over the tokens routed since the last
        update, so overloaded experts are picked less and idle ones more; then reset the load."""
        load = self.expert_load
        if self.expert_bias is not None and load.sum() > 0:
            self.expert_bias += rate * torch.sign(load.mean() - load)
        load.zero_()


class LLaDA2MoeSparseMoeBlock(nn.Module):
    """Routed experts (per-expert ``nn.Linear``, names as in the checkpoint) plus always-on shared
    experts."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        self.num_experts = config.num_experts
        self.gate = LLaDA2MoeRouter(config)
        self.experts = nn.ModuleList(
            [LLaDA2MoeMLP(config, config.moe_intermediate_size) for _ in range(config.num_experts)]
        )
        shared = config.moe_shared_expert_intermediate_size or config.moe_intermediate_size * (
            config.num_shared_experts or 0
        )
        self.shared_experts = LLaDA2MoeMLP(config, shared) if config.num_shared_experts else None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``[B, S, D]`` -> ``[B, S, D]``; the weighted expert sum is accumulated in float32, then
        cast back."""
        shape = hidden_states.shape
        x = hidden_states.reshape(-1, shape[-1])  # [T, D]
        if x.shape[0] == 0:
            return hidden_states
        expert_ids, weights = self.gate(x)
        top_k = expert_ids.shape[1]
        flat_ids = expert_ids.reshape(-1)  # [T*k]
        order = flat_ids.argsort(stable=True)  # assignments grouped by expert
        token_of = order // top_k
        counts = torch.bincount(flat_ids, minlength=self.num_experts).tolist()
        routed_x = x[token_of]
        outputs, start = [], 0
        for expert, count in zip(self.experts, counts):
            if count:
                outputs.append(expert(routed_x[start : start + count]))
                start += count
        routed_y = torch.cat(outputs, dim=0).float() * weights.reshape(-1)[order, None]
        y = torch.zeros(x.shape, dtype=torch.float32, device=x.device).index_add_(
            0, token_of, routed_y
        )
        y = y.to(hidden_states.dtype)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y.view(shape)


class LLaDA2MoeDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: ``h += attention(norm(h)); h += mlp(norm(h))`` (dense FFN or MoE by layer
    index)."""

    def __init__(self, config: LLaDA2MoeConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = LLaDA2MoeRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.attention = LLaDA2MoeAttention(config, layer_idx)
        self.post_attention_layernorm = LLaDA2MoeRMSNorm(
            config.hidden_size, eps=config.rms_norm_eps
        )
        if layer_idx < config.first_k_dense_replace:
            self.mlp = LLaDA2MoeMLP(config, config.intermediate_size)
        else:
            self.mlp = LLaDA2MoeSparseMoeBlock(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden_states = hidden_states + self.attention(
            self.input_layernorm(hidden_states), position_embeddings, attention_mask
        )
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


# --------------------------------------------------------------------------------------------------
# Models


class LLaDA2MoePreTrainedModel(PreTrainedModel):
    """Shared transformers plumbing: config class, init, SDPA support, fp32 expert bias on bf16/fp16
    loads."""

    config_class = LLaDA2MoeConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["LLaDA2MoeDecoderLayer"]
    _supports_sdpa = True
    _keep_in_fp32_modules_strict: ClassVar[list[str]] = ["expert_bias"]
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"rotary_emb\.inv_freq"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # Linear/Embedding normal(0, initializer_range), RMSNorm ones
        if isinstance(module, LLaDA2MoeRouter):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.expert_bias is not None:
                init.zeros_(module.expert_bias)
        elif isinstance(module, LLaDA2MoeRotaryEmbedding):
            init.copy_(module.inv_freq, rotary_inv_freq(module.theta, module.rotary_dim))


class LLaDA2MoeModel(LLaDA2MoePreTrainedModel):
    """Decoder stack without the LM head: ids ``[B, S]`` -> final-normed hidden ``[B, S, D]``."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            [LLaDA2MoeDecoderLayer(config, i) for i in range(config.num_hidden_layers)]
        )
        self.norm = LLaDA2MoeRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LLaDA2MoeRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.word_embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | dict | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        """input_ids ``[B, S]`` (or inputs_embeds ``[B, S, D]``); position_ids ``[B|1, S]`` or
        ``[S]``, default ``arange(S)``; attention_mask as in the module docstring. Other keyword
        arguments are ignored."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        hidden = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        batch, seq, _ = hidden.shape
        if position_ids is None:
            position_ids = torch.arange(seq, device=hidden.device)
        if position_ids.dim() == 1:
            position_ids = position_ids.unsqueeze(0)
        mask = prepare_attention_mask(attention_mask, batch, seq, seq, hidden.dtype)
        if mask is not None:
            mask = mask.to(hidden.device)
        position_embeddings = self.rotary_emb(position_ids.to(hidden.device), hidden.dtype)
        all_hidden = [] if output_hidden_states else None
        for layer in self.layers:
            if all_hidden is not None:
                all_hidden.append(hidden)
            hidden = layer(hidden, position_embeddings, mask)
        hidden = self.norm(hidden)
        if all_hidden is not None:
            all_hidden.append(hidden)
        return BaseModelOutput(
            last_hidden_state=hidden, hidden_states=tuple(all_hidden) if all_hidden else None
        )


class LLaDA2MoeModelLM(LLaDA2MoePreTrainedModel):
    """LLaDA2 masked-diffusion LM: ``model`` + ``lm_head``; float32 logits ``[B, S, V]``, logit i
    predicts token i."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "lm_head.weight": "model.word_embeddings.weight"
    }

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__(config)
        self.model = LLaDA2MoeModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.word_embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | dict | None = None,
        position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        """Same inputs as ``LLaDA2MoeModel.forward``; ``labels`` ``[B, S]`` (-100 = ignore) give the
        mean cross-entropy of logit i against label i (no shift) as ``loss``."""
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(outputs.last_hidden_state).float()
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits.flatten(0, 1), labels.flatten().to(logits.device), ignore_index=-100
            )
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


def register_llada2() -> None:
    """Register the LLaDA2 classes with the transformers Auto factories (idempotent)."""
    AutoConfig.register(LLaDA2MoeConfig.model_type, LLaDA2MoeConfig, exist_ok=True)
    AutoModel.register(LLaDA2MoeConfig, LLaDA2MoeModel, exist_ok=True)
    AutoModelForMaskedLM.register(LLaDA2MoeConfig, LLaDA2MoeModelLM, exist_ok=True)
    AutoModelForCausalLM.register(LLaDA2MoeConfig, LLaDA2MoeModelLM, exist_ok=True)


register_llada2()
