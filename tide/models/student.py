"""BD3LM student: a Qwen3 decoder used as a block-diffusion model ("a2d", autoregressive to diffusion).

The converted model is the AR Qwen3 with one change: no causal mask is ever built. The caller's
``attention_mask`` is used as given, so all block structure comes from caller masks and the caller
passes explicit ``position_ids``:

- ``None``                        -> full (bidirectional) attention;
- 2-D ``[B, K]`` padding mask     -> additive ``[B, 1, Q, K]`` mask hiding padded keys;
- 4-D ``[B|1, 1|H, Q, K]`` tensor -> passed to every layer unchanged (bool: True = attend; float: additive);
- a flex ``BlockMask`` or a per-layer-type dict -> passed unchanged.

As in Qwen3, a passed ``past_key_values`` is appended to even with ``use_cache=False``.
The mask token lives only in the tokenizer; its embedding row is an ordinary (spare) row.

Importing this module registers ``a2d-qwen3`` with ``AutoConfig``, ``AutoModel`` (base model) and
``AutoModelForMaskedLM`` (LM head), so ``save_pretrained`` directories load through the Auto classes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3Model,
)
from transformers.models.qwen3.modeling_qwen3 import Qwen3PreTrainedModel

from tide.outputs import fresh_output_dir

MODEL_TYPE = "a2d-qwen3"

# Files a tokenizer directory may hold; a2d_convert copies those it finds next to the AR weights.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
)

# Architecture of the student sizes (the vocabulary and special ids are given per call).
STUDENT_SIZES: dict[str, dict] = {
    # ~0.93M parameters at vocab 1100: the tiny-world student.
    "tiny": {
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
    },
    # A few 10k parameters: unit tests.
    "unit": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
    },
    # Qwen3-0.6B (bd3lm.md §1): 596,049,920 parameters at vocab 151936 and 28 layers
    # (tide.models.configs.student_paper_config chooses the depth).
    "paper": {
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
    },
}


class A2DQwen3Config(Qwen3Config):
    """Qwen3 config of a decoder used without causal mask (BD3LM student)."""

    model_type = MODEL_TYPE


def _expand_padding_mask(
    padding_mask: torch.Tensor, query_len: int, past_len: int, dtype: torch.dtype
) -> torch.Tensor:
    """2-D key padding mask -> additive 4-D mask.

    padding_mask: [B, K] (nonzero/True = real token), K = past_len + query_len.
    Returns: [B, 1, query_len, K] in `dtype`, 0 where the key is visible, finfo.min where padded.
    Query rows are never fully masked unless the whole row of keys is padding (then uniform, finite).
    """
    batch, key_len = padding_mask.shape
    if key_len != past_len + query_len:
        raise ValueError(
            f"2-D attention_mask has {key_len} columns but the keys are {past_len} cached + "
            f"{query_len} new = {past_len + query_len}; pass a mask over cached and new tokens."
        )
    hidden = ~padding_mask.bool()
    additive = torch.zeros(batch, 1, 1, key_len, dtype=dtype, device=padding_mask.device)
    additive = additive.masked_fill(hidden[:, None, None, :], torch.finfo(dtype).min)
    return additive.expand(batch, 1, query_len, key_len)


def _check_mask_backend(mask: torch.Tensor, attn_implementation: str | None) -> None:
    """Refuse 4-D masks on attention backends that would silently mis-handle them."""
    impl = attn_implementation or "sdpa"
    if mask.dtype == torch.bool and impl != "sdpa":
        raise ValueError(
            f"a 4-D bool attention_mask needs attn_implementation='sdpa', the model uses {impl!r} "
            "('eager' and 'flex_attention' add a bool mask as 0/1 instead of hiding keys). "
            "Load the model with attn_implementation='sdpa' or pass an additive float mask."
        )
    if impl not in ("sdpa", "eager", "flex_attention"):
        raise ValueError(
            f"a dense 4-D attention_mask is not supported with attn_implementation={impl!r}; "
            "use 'sdpa' (or an additive float mask with 'eager' / 'flex_attention')."
        )


class A2DQwen3Model(Qwen3Model):
    """Qwen3 decoder stack that never builds a causal mask (see the module docstring)."""

    config_class = A2DQwen3Config

    def __init__(self, config: A2DQwen3Config) -> None:
        super().__init__(config)
        for layer in self.layers:
            # Stops SDPA / flash kernels from applying their implicit causal mask when no mask is given.
            layer.self_attn.is_causal = False

    def _layer_masks(
        self,
        attention_mask: torch.Tensor | dict | None,
        inputs_embeds: torch.Tensor,
        past_key_values,
    ) -> dict:
        """The caller's mask, per layer type, as the Qwen3 decoder consumes it (no causal part)."""
        if isinstance(attention_mask, dict):
            return attention_mask
        mask = attention_mask
        if isinstance(mask, torch.Tensor):
            if mask.dim() == 2:
                past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
                mask = _expand_padding_mask(
                    mask, inputs_embeds.shape[1], past_len, inputs_embeds.dtype
                )
            elif mask.dim() == 4:
                _check_mask_backend(mask, self.config._attn_implementation)
            else:
                raise ValueError(
                    f"attention_mask must be None, 2-D [B, K] or 4-D [B, 1, Q, K]; got shape "
                    f"{tuple(mask.shape)}"
                )
        return {layer_type: mask for layer_type in set(self.config.layer_types)}

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | dict | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ):
        """Qwen3Model.forward with the caller's mask used as given instead of a causal one."""
        if inputs_embeds is None and input_ids is not None:
            inputs_embeds = self.embed_tokens(input_ids)
            input_ids = None
        if inputs_embeds is None:
            raise ValueError("pass input_ids or inputs_embeds")
        masks = self._layer_masks(attention_mask, inputs_embeds, past_key_values)
        return super().forward(
            input_ids=input_ids,
            attention_mask=masks,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )


class A2DQwen3LMHeadModel(Qwen3ForCausalLM):
    """Qwen3 LM head model over `A2DQwen3Model`; logit i scores token i (no shift)."""

    config_class = A2DQwen3Config

    def __init__(self, config: A2DQwen3Config) -> None:
        # Skip Qwen3ForCausalLM.__init__, which would build (and initialise) a causal Qwen3Model.
        Qwen3PreTrainedModel.__init__(self, config)
        self.model = A2DQwen3Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


AutoConfig.register(MODEL_TYPE, A2DQwen3Config, exist_ok=True)
AutoModel.register(A2DQwen3Config, A2DQwen3Model, exist_ok=True)
AutoModelForMaskedLM.register(A2DQwen3Config, A2DQwen3LMHeadModel, exist_ok=True)


def student_config(
    vocab_size: int,
    pad_id: int,
    eos_id: int,
    *,
    bos_id: int | None = None,
    size: Literal["tiny", "unit", "paper"] = "tiny",
    max_position_embeddings: int = 512,
    a2d: bool = False,
    **overrides,
) -> Qwen3Config:
    """Config of a student of the given size.

    a2d=False gives the AR `Qwen3Config` (model_type "qwen3") used for AR pretraining; a2d=True gives
    the `A2DQwen3Config` of the converted BD3LM student (what `a2d_convert` produces).
    Tied embeddings, qk-RMSNorm, RoPE theta 1e6, SDPA attention. `overrides` replace any field.
    """
    if size not in STUDENT_SIZES:
        raise ValueError(f"unknown student size {size!r}; choose one of {sorted(STUDENT_SIZES)}")
    fields = dict(
        STUDENT_SIZES[size],
        vocab_size=vocab_size,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=bos_id,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        rms_norm_eps=1e-6,
        attention_bias=False,
        use_sliding_window=False,
    )
    fields.update(overrides)
    config_class = A2DQwen3Config if a2d else Qwen3Config
    config = config_class(**fields)
    config._attn_implementation = "sdpa"
    return config


def _a2d_config(ar_config: Qwen3Config) -> A2DQwen3Config:
    """The AR config with model_type "a2d-qwen3"; `architectures` and `auto_map` dropped."""
    fields = ar_config.to_dict()
    for key in ("architectures", "auto_map", "model_type", "transformers_version"):
        fields.pop(key, None)
    config = A2DQwen3Config(**fields)
    config._attn_implementation = ar_config._attn_implementation or "sdpa"
    return config


def _load_ar_model(ar_model_or_dir: Qwen3ForCausalLM | str | Path) -> Qwen3ForCausalLM:
    """The AR model itself, or loaded from a `save_pretrained` directory."""
    if isinstance(ar_model_or_dir, Qwen3ForCausalLM):
        return ar_model_or_dir
    path = Path(ar_model_or_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"a2d_convert: no config.json in AR model directory {path}")
    model = Qwen3ForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    if type(model.config) is not Qwen3Config:
        raise ValueError(
            f"a2d_convert: {path} holds model_type {model.config.model_type!r}, expected 'qwen3'"
        )
    return model


def a2d_convert(
    ar_model_or_dir: Qwen3ForCausalLM | str | Path,
    out_dir: str | Path | None = None,
    *,
    mask_id: int | None = None,
    right_shift_logits: bool = False,
) -> A2DQwen3LMHeadModel:
    """Convert an AR Qwen3 into the BD3LM student: same weights, no causal mask.

    The AR state dict is copied with strict=False; nothing is added, resized or re-initialised
    (only the tied `lm_head.weight` may be absent from the copy). `mask_id` (the tokenizer's mask
    token) must index an existing embedding row. With `out_dir`, the model is saved there with
    `save_pretrained`, together with any tokenizer files found next to the AR weights.
    `right_shift_logits` is stored in the config (see `tide.diffusion.student_logits`).
    """
    ar_model = _load_ar_model(ar_model_or_dir)
    config = _a2d_config(ar_model.config)
    config.right_shift_logits = bool(right_shift_logits)
    if mask_id is not None and not 0 <= mask_id < config.vocab_size:
        raise ValueError(
            f"a2d_convert: mask id {mask_id} has no embedding row (vocab_size {config.vocab_size}); "
            "the mask token must reuse a spare row of the AR vocabulary."
        )
    ar_param = next(ar_model.parameters())
    model = A2DQwen3LMHeadModel(config).to(device=ar_param.device, dtype=ar_param.dtype)
    result = model.load_state_dict(ar_model.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = set(result.missing_keys) - tied
    if missing or result.unexpected_keys:
        raise ValueError(
            f"a2d_convert: AR state dict does not match the student (missing {sorted(missing)}, "
            f"unexpected {sorted(result.unexpected_keys)})"
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    if out_dir is not None:
        out = fresh_output_dir(out_dir)
        model.save_pretrained(out)
        if not isinstance(ar_model_or_dir, torch.nn.Module):
            for name in TOKENIZER_FILES:
                source = Path(ar_model_or_dir) / name
                if source.is_file():
                    shutil.copyfile(source, out / name)
    return model
