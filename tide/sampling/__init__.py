"""Sampling from BD3LM students (and, in `tide.sampling.teachers`, from the two diffusion teachers).

Entry point: `generate(model, prompt_ids, gen_length=..., steps=..., block_size=..., mask_id=...,
method="reference")`. Sampler implementations are registered by name in `SAMPLERS`: "reference"
(dllm's loop, the ground truth), "cached" (the same tokens with a KV cache of the clean blocks),
"threshold" (Fast-dLLM confidence-threshold decoding on the cache; keyword `threshold`). Others plug
in with `register_sampler(name, fn)` and the same keyword signature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from tide.sampling.cached import cached_generate, threshold_generate
from tide.sampling.reference import REMASKING_MODES, reference_generate
from tide.sampling.schedule import num_transfer_tokens

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "reference": reference_generate,  # dllm's loop, the ground truth
    "cached": cached_generate,  # same tokens, KV cache of the clean blocks
    "threshold": threshold_generate,  # Fast-dLLM confidence threshold (keyword `threshold`)
}


def register_sampler(name: str, fn: Callable[..., torch.Tensor]) -> None:
    """Make `fn` available as `generate(..., method=name)`; it must accept generate's keywords."""
    SAMPLERS[name] = fn


@dataclass
class SamplerConfig:
    """BD3LM sampler settings (dllm defaults; eval uses steps = gen_length, block 32, greedy)."""

    gen_length: int = 128
    steps: int = 128
    block_size: int = 32
    remasking: str = "low_confidence"
    temperature: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gen_length", "steps", "block_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"SamplerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.remasking not in REMASKING_MODES:
            raise ValueError(
                f"SamplerConfig.remasking {self.remasking!r} is not one of {REMASKING_MODES}"
            )
        if self.temperature < 0:
            raise ValueError(f"SamplerConfig.temperature must be >= 0, got {self.temperature}")

    def as_kwargs(self) -> dict:
        """Keyword arguments for `generate`."""
        return asdict(self)


def _check_inputs(prompt_ids: torch.Tensor, gen_length: int, steps: int, block_size: int) -> None:
    """Clear errors for malformed generate() arguments."""
    if not isinstance(prompt_ids, torch.Tensor) or prompt_ids.dim() != 2:
        shape = (
            tuple(prompt_ids.shape) if isinstance(prompt_ids, torch.Tensor) else type(prompt_ids)
        )
        raise ValueError(f"generate: prompt_ids must be a LongTensor [B, P], got {shape}")
    if prompt_ids.dtype != torch.long:
        raise ValueError(f"generate: prompt_ids must be int64 token ids, got {prompt_ids.dtype}")
    for name, value in (("gen_length", gen_length), ("steps", steps), ("block_size", block_size)):
        if value < 1:
            raise ValueError(f"generate: {name} must be >= 1, got {value}")


@torch.no_grad()
def generate(
    model,
    prompt_ids: torch.Tensor,
    *,
    gen_length: int,
    steps: int,
    block_size: int,
    mask_id: int,
    eos_id: int | None = None,
    pad_id: int | None = None,
    method: str = "reference",
    **kw,
) -> torch.Tensor:
    """Generate `gen_length` tokens after each prompt with a BD3LM student.

    prompt_ids: LongTensor[B, P], left-padded with pad_id (pad_id None: no padding present).
    kw: sampler options, e.g. remasking ("low_confidence" | "random"), temperature (0 = greedy),
    steps_per_block, generator. Returns LongTensor[B, gen_length], the generated part only.
    """
    if method not in SAMPLERS:
        raise ValueError(f"generate: unknown method {method!r}; available: {sorted(SAMPLERS)}")
    _check_inputs(prompt_ids, gen_length, steps, block_size)
    remasking = kw.get("remasking", "low_confidence")
    if remasking not in REMASKING_MODES:
        raise ValueError(f"generate: unknown remasking {remasking!r}; choose {REMASKING_MODES}")
    if kw.get("temperature", 0.0) < 0:
        raise ValueError(f"generate: temperature must be >= 0, got {kw['temperature']}")
    return SAMPLERS[method](
        model,
        prompt_ids,
        gen_length=gen_length,
        steps=steps,
        block_size=block_size,
        mask_id=mask_id,
        eos_id=eos_id,
        pad_id=pad_id,
        **kw,
    )


__all__ = [
    "SAMPLERS",
    "SamplerConfig",
    "cached_generate",
    "generate",
    "num_transfer_tokens",
    "reference_generate",
    "register_sampler",
    "threshold_generate",
]
