"""Teacher-B: WeDLM (model_type ``"wedlm"``), a dense diffusion LM with the exact Qwen3
architecture.

``tencent/WeDLM-8B-Instruct`` is Qwen3 (q/k RMSNorm, no attention bias) trained to fill mask slots
under causal attention, so the classes here are thin subclasses of transformers' Qwen3 classes that
carry the WeDLM ``model_type`` and ``mask_token_id``; importing the module registers them with
``AutoConfig`` and ``AutoModelForCausalLM`` (the hub remote code is not needed and does not run on
transformers 5.x).

Attention (inherited from ``Qwen3Model``, checked on transformers 5.23):
    * ``None`` or 2-D ``[B, K]`` padding mask -> causal (WeDLM's native inference mode);
    * 4-D ``[B|1, 1, Q, K]`` bool (True = attend) or additive float, or a dict
      ``{"full_attention": M}`` -> passed to the attention kernel unchanged (no causal mask added).
      TIDE passes the BD3LM block mask this way.
Logits stay in the model dtype.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM

WEDLM_MASK_TOKEN_ID = (
    151665  # engine / finetune / TIDE default (Qwen3 names the id "<tool_response>")
)
WEDLM_EOS_TOKEN_ID = 151643  # "<|endoftext|>"
WEDLM_IM_END_TOKEN_ID = 151645  # "<|im_end|>", the end of an assistant turn


class WeDLMConfig(Qwen3Config):
    """Qwen3 config with ``model_type="wedlm"``, ``qk_norm`` and ``mask_token_id`` (None -> 151665).

    Only ``qk_norm=True`` is supported: the Qwen3 layers always hold ``q_norm``/``k_norm``, as the
    WeDLM engine does whenever ``attention_bias`` is false.
    """

    model_type = "wedlm"

    qk_norm: bool = True
    mask_token_id: int | None = None

    def __post_init__(self, **kwargs):
        if self.mask_token_id is None:
            self.mask_token_id = WEDLM_MASK_TOKEN_ID
        super().__post_init__(**kwargs)
        if not self.qk_norm:
            raise ValueError(
                "invalid WeDLMConfig: qk_norm=False is not supported "
                "(Qwen3 layers always have q/k norms)"
            )


class WeDLMForCausalLM(Qwen3ForCausalLM):
    """WeDLM LM = ``Qwen3ForCausalLM`` (same state-dict names: ``model.embed_tokens``,
    ``model.layers.{i}.self_attn.*``, ``model.layers.{i}.mlp.*``, ``model.norm``, ``lm_head``).
    ``forward(input_ids, attention_mask, position_ids, ...)`` returns ``CausalLMOutputWithPast``
    with ``logits [B, S, V]``; see the module docstring for masks."""

    config_class = WeDLMConfig


def register_wedlm() -> None:
    """Register the WeDLM classes with the transformers Auto factories (idempotent)."""
    AutoConfig.register(WeDLMConfig.model_type, WeDLMConfig, exist_ok=True)
    AutoModelForCausalLM.register(WeDLMConfig, WeDLMForCausalLM, exist_ok=True)


register_wedlm()
