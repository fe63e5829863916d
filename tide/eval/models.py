"""lm-eval model classes for our checkpoints (generative tasks only).

Registered names (``lm_eval --model <name>`` or ``simple_evaluate(model=<name>)`` once this module
is imported):

* ``tide_bd3lm``  the BD3LM student (``a2d-qwen3``), ``tide.sampling.generate``. ``method``:
  ``cached`` (default: the reference's tokens, KV cache of the clean blocks), ``reference`` (dllm's
  loop, the ground truth) or ``threshold`` (Fast-dLLM confidence threshold, arg ``threshold``,
  default 0.9; not the paper's sampler). Args: gen_length / max_new_tokens, steps, block_size,
  remasking, temperature, method, threshold.
* ``tide_llada2`` teacher A (``llada2_moe``), ``llada2_generate``: block_size, steps, threshold.
* ``tide_wedlm``  teacher B (``wedlm``), streaming decoding (``wedlm_generate_cached`` by default,
  ``method=reference``: the cache-free ``wedlm_generate``; the same tokens): window,
  entropy_threshold, distance_penalty; or ``decoder=block``: the BD3LM sampler as for the student
  (``method`` cached by default).
* ``tide_ar``     the AR Qwen3 (``qwen3``), greedy HF ``generate``.

Common args: pretrained (checkpoint directory), tokenizer (default: pretrained), batch_size,
device, dtype, seed, inject_think, attention (the config's kernels: flash attention only where the
sampler passes no 4-D mask, i.e. ``tide_ar``; SDPA otherwise). ``generate_until`` follows the paper's dllm/TIDE harness:

1. requests in the given order, in chunks of ``batch_size`` (a chunk never mixes generation
   lengths);
2. the think block ``"<think>\\n\\n</think>\\n\\n"`` is appended to a context that lacks it (Qwen3-style
   templates only; ``inject_think=False`` or env ``INJECT_THINK=0`` turns it off);
3. ``tokenizer(ctx)`` without added special tokens, sampling;
4. trim: cut at the first EOS / end-of-turn id, decode skipping special tokens, split on the
   EOS strings, drop ``<think>...</think>`` blocks, cut before each ``until`` string.

Generation length: the model arg ``gen_length`` (alias ``max_new_tokens``) if given, else the
task's ``max_gen_toks``, else 256. The student's ``steps`` default to the generation length (one
token per step, as in the paper). ``get_model_info`` returns every setting; lm-eval stores it in
the results' ``config``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

THINK_BLOCK = "<think>\n\n</think>\n\n"
THINK_PATTERN = re.compile(r"<think>.*?</think>\s*", re.DOTALL)
# tokens that end an assistant turn besides the tokenizer's EOS (ChatML, LLaDA2 role tags)
END_OF_TURN_TOKENS = ("<|im_end|>", "<|role_end|>")
DEFAULT_MAX_NEW_TOKENS = 256
# BD3LM block sampler of the eval classes: the KV-cached one returns the reference's tokens
# (tests/sampling/test_cached.py) at a fraction of its cost; method=reference runs dllm's loop.
DEFAULT_BLOCK_METHOD = "cached"
WEDLM_METHODS = ("cached", "reference")  # streaming decoder: with / without the KV cache
# tokenizer mask token per model_type, when the saved tokenizer has none
DEFAULT_MASK_TOKENS = {
    "a2d-qwen3": "<|mask|>",
    "llada2_moe": "<|mask|>",
    "wedlm": "<tool_response>",
}
GENERATIVE_ONLY = (
    "{name}: generative tasks only; {method} is not available for a diffusion / greedy sampler "
    "(use generate_until tasks such as tiny_world or the paper's generative tasks)"
)


class EvalModelError(ValueError):
    """A model argument or checkpoint that an evaluation model class cannot use; names it."""


# --------------------------------------------------------------------------------------------------
# Output trimming (paper §4, generate_until steps 5-7)


def trim_generation(
    token_ids: Sequence[int], tokenizer, stop_ids: set[int], until: Sequence[str]
) -> str:
    """The reply text of generated ``token_ids`` (prompt already removed).

    Cut at the first id in ``stop_ids``; decode skipping special tokens (left-over masks vanish);
    split on the EOS / end-of-turn strings; delete ``<think>...</think>`` blocks; keep the text
    before the first occurrence of each ``until`` string.
    """
    ids = list(token_ids)
    cut = next((i for i, t in enumerate(ids) if t in stop_ids), len(ids))
    text = tokenizer.decode(ids[:cut], skip_special_tokens=True)
    for stop in _stop_strings(tokenizer):
        text = text.split(stop)[0]
    text = THINK_PATTERN.sub("", text)
    for stop in until:
        if stop:
            text = text.split(stop)[0]
    return text


def _stop_strings(tokenizer) -> list[str]:
    """EOS and end-of-turn token strings of ``tokenizer``."""
    names = [tokenizer.eos_token, *END_OF_TURN_TOKENS]
    vocab = tokenizer.get_vocab()
    return [n for n in dict.fromkeys(names) if n and n in vocab]


def stop_token_ids(tokenizer) -> set[int]:
    """Ids that end a reply: the tokenizer's EOS plus the end-of-turn tokens it has."""
    return {tokenizer.convert_tokens_to_ids(s) for s in _stop_strings(tokenizer)}


def with_think_block(context: str) -> str:
    """``context`` with the empty think block appended unless it already holds one (TIDE)."""
    return context if THINK_BLOCK in context else context + THINK_BLOCK


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise EvalModelError(f"model arg {name}={value!r} is not a boolean")


def _as_int(value: Any, name: str, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise EvalModelError(f"model arg {name}={value!r} is not an integer") from None
    if number < minimum or number != float(value):
        raise EvalModelError(f"model arg {name}={value!r} must be an integer >= {minimum}")
    return number


def _as_float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EvalModelError(f"model arg {name}={value!r} is not a number") from None


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------------------------------
# Base class


class TideLM(LM):
    """Shared machinery: loading, chat template, request chunking, trimming, settings.

    Subclasses set ``MODEL_TYPE`` and implement ``_generate(prompts, gen_length)``:
    ``prompts`` is a list of token-id lists, the result one list of generated ids per prompt.
    """

    MODEL_TYPE = ""
    NAME = ""
    STOP_ON_PAD = False  # also end replies at the pad id (WeDLM stops at <|endoftext|>)
    DENSE_MASK = True  # its sampler passes 4-D attention masks: SDPA whatever `attention` asks

    def __init__(
        self,
        pretrained: str | Path,
        tokenizer: str | Path | None = None,
        batch_size: int | str = 1,
        gen_length: int | None = None,
        max_new_tokens: int | None = None,
        seed: int = 0,
        dtype: str | None = None,
        device: str | None = None,
        inject_think: bool | str | None = None,
        max_batch_size: int | None = None,  # passed by lm-eval; unused (no auto batch size)
        attention: str = "sdpa",
        **sampler_args: Any,
    ) -> None:
        super().__init__()
        from tide.models.loading import CheckpointError, load_model
        from tide.tokenization import load_tokenizer

        self.pretrained = str(pretrained)
        if str(batch_size).startswith("auto"):
            raise EvalModelError(f"{self.NAME}: batch_size={batch_size!r}: give an integer")
        self.batch_size = _as_int(batch_size, "batch_size")
        if (
            gen_length is not None
            and max_new_tokens is not None
            and int(gen_length) != int(max_new_tokens)
        ):
            raise EvalModelError(
                f"{self.NAME}: gen_length={gen_length} and max_new_tokens={max_new_tokens} disagree"
            )
        length = gen_length if gen_length is not None else max_new_tokens
        self.gen_length = None if length is None else _as_int(length, "gen_length")
        self.seed = _as_int(seed, "seed", minimum=0)
        self._device = torch.device(device or _default_device())
        self.sampler = self._sampler_settings(dict(sampler_args))
        try:
            self.model = load_model(pretrained, dtype=dtype, kind=self.MODEL_TYPE,
                                    attention=attention, dense_mask=self.DENSE_MASK).to(self._device)
        except CheckpointError as err:
            raise EvalModelError(
                f"{self.NAME}: cannot load checkpoint {pretrained}: {err}"
            ) from err
        self.tokenizer_path = str(tokenizer or pretrained)
        try:
            self.tokenizer = load_tokenizer(
                self.tokenizer_path, mask_token=DEFAULT_MASK_TOKENS.get(self.MODEL_TYPE, "<|mask|>")
            )
        except (OSError, ValueError) as err:
            raise EvalModelError(
                f"{self.NAME}: cannot load the tokenizer of {self.tokenizer_path}: {err}"
            ) from err
        self.stop_ids = stop_token_ids(self.tokenizer)
        if self.STOP_ON_PAD and self.tokenizer.pad_token_id is not None:
            self.stop_ids.add(self.tokenizer.pad_token_id)
        self.dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
        if inject_think is None:
            self.inject_think = self._template_has_think_block() and (
                os.environ.get("INJECT_THINK", "1") != "0"
            )
        else:
            self.inject_think = _as_bool(inject_think, "inject_think")
        self.generator = torch.Generator(device=self._device).manual_seed(self.seed)

    def _template_has_think_block(self) -> bool:
        """Whether the chat template's generation prompt carries the empty think block (Qwen3
        with thinking off): only then does TIDE's think injection apply."""
        if not self.tokenizer.chat_template:
            return False
        probe = self.apply_chat_template([{"role": "user", "content": "x"}])
        return probe.endswith(THINK_BLOCK)

    # --- settings -------------------------------------------------------------------------------
    def _sampler_settings(self, args: dict[str, Any]) -> dict[str, Any]:
        """Validated sampler settings from the remaining model args; unknown names are errors."""
        if args:
            raise EvalModelError(f"{self.NAME}: unknown model args {sorted(args)}")
        return {}

    def get_model_info(self) -> dict[str, Any]:
        """Everything that determines the outputs; lm-eval merges it into results['config']."""
        return {
            "tide_model": {
                "class": self.NAME,
                "model_type": self.MODEL_TYPE,
                "pretrained": self.pretrained,
                "tokenizer": self.tokenizer_path,
                "dtype": self.dtype,
                "device": str(self._device),
                "batch_size": self.batch_size,
                "gen_length": self.gen_length,
                "seed": self.seed,
                "inject_think": self.inject_think,
                "stop_ids": sorted(self.stop_ids),
                "sampler": dict(self.sampler),
            }
        }

    # --- chat template (lm-eval apply_chat_template=True) ------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer_path.replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.tokenizer.chat_template

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """The chat text (thinking disabled); without a generation prompt the last (assistant)
        message is continued, which is how lm-eval passes a task's ``gen_prefix``."""
        from tide.tokenization import render_chat

        return render_chat(
            self.tokenizer,
            chat_history,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    # --- requests ---------------------------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(GENERATIVE_ONLY.format(name=self.NAME, method="loglikelihood"))

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(
            GENERATIVE_ONLY.format(name=self.NAME, method="loglikelihood_rolling")
        )

    def request_gen_length(self, gen_kwargs: dict[str, Any]) -> int:
        """Tokens to generate: the model arg, else the task's ``max_gen_toks``, else 256."""
        if self.gen_length is not None:
            return self.gen_length
        return _as_int(gen_kwargs.get("max_gen_toks", DEFAULT_MAX_NEW_TOKENS), "max_gen_toks")

    def _chunks(self, requests: list) -> Iterator[tuple[int, list]]:
        """(generation length, chunk of consecutive requests) in the given order."""
        chunk: list = []
        length = None
        for request in requests:
            this = self.request_gen_length(request.args[1])
            if chunk and (this != length or len(chunk) == self.batch_size):
                yield length, chunk
                chunk = []
            chunk.append(request)
            length = this
        if chunk:
            yield length, chunk

    def encode_context(self, context: str) -> list[int]:
        if self.inject_think:
            context = with_think_block(context)
        return self.tokenizer(context, add_special_tokens=False)["input_ids"]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        outputs: list[str] = []
        progress = tqdm(total=len(requests), disable=disable_tqdm, desc=f"{self.NAME} generating")
        for gen_length, chunk in self._chunks(list(requests)):
            prompts = [self.encode_context(r.args[0]) for r in chunk]
            with torch.no_grad():
                generated = self._generate(prompts, gen_length)
            for request, ids in zip(chunk, generated):
                until = request.args[1].get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                text = trim_generation(ids, self.tokenizer, self.stop_ids, until)
                outputs.append(text)
                self.cache_hook.add_partial("generate_until", request.args, text)
            progress.update(len(chunk))
        progress.close()
        return outputs

    def _generate(self, prompts: list[list[int]], gen_length: int) -> list[list[int]]:
        raise NotImplementedError

    # --- helpers for subclasses ---------------------------------------------------------------
    def mask_id(self) -> int:
        """The mask token id: the tokenizer's, else the model config's."""
        mask = self.tokenizer.mask_token_id
        if mask is None:
            mask = getattr(self.model.config, "mask_token_id", None)
        if mask is None:
            raise EvalModelError(f"{self.NAME}: no mask token in {self.tokenizer_path}")
        return int(mask)

    def block_generate(self, prompts: list[list[int]], gen_length: int, **kw: Any) -> list[list[int]]:
        """``tide.sampling.generate`` (the BD3LM block sampler) on the left-padded prompts, with the
        ``steps`` (None: one per token) and ``block_size`` of the sampler settings."""
        from tide.sampling import generate

        out = generate(
            self.model,
            self.left_padded(prompts),
            gen_length=gen_length,
            steps=self.sampler["steps"] or gen_length,
            block_size=self.sampler["block_size"],
            mask_id=self.mask_id(),
            eos_id=self.tokenizer.eos_token_id,
            pad_id=self.tokenizer.pad_token_id,
            **kw,
        )
        return out.tolist()

    def left_padded(self, prompts: list[list[int]]) -> torch.Tensor:
        """LongTensor[B, max P]: prompts left-padded with the pad id."""
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        rows = [[pad] * (width - len(p)) + list(p) for p in prompts]
        return torch.tensor(rows, dtype=torch.long, device=self._device)


def _by_length(prompts: list[list[int]]) -> dict[int, list[int]]:
    """Prompt indices grouped by prompt length (samplers that need equal-length batches)."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    return groups


# --------------------------------------------------------------------------------------------------
# Model classes


@register_model("tide_bd3lm")
class BD3LMEvalModel(TideLM):
    """BD3LM student with ``tide.sampling.generate`` (paper eval: greedy, low-confidence
    remasking, block 32, steps = max_new_tokens), the KV-cached sampler by default (the
    reference's tokens), a chunk of ``batch_size`` left-padded prompts per call."""

    MODEL_TYPE = "a2d-qwen3"
    NAME = "tide_bd3lm"

    def _sampler_settings(self, args: dict[str, Any]) -> dict[str, Any]:
        from tide.sampling import REMASKING_MODES, SAMPLERS

        steps = args.pop("steps", None)  # None: steps = generation length
        settings = {
            "method": str(args.pop("method", DEFAULT_BLOCK_METHOD)),
            "steps": None if steps is None else _as_int(steps, "steps"),
            "block_size": _as_int(args.pop("block_size", 32), "block_size"),
            "remasking": str(args.pop("remasking", "low_confidence")),
            "temperature": _as_float(args.pop("temperature", 0.0), "temperature"),
        }
        if settings["method"] not in SAMPLERS:
            raise EvalModelError(
                f"{self.NAME}: unknown method {settings['method']!r}; available {sorted(SAMPLERS)}"
            )
        if settings["remasking"] not in REMASKING_MODES:
            raise EvalModelError(
                f"{self.NAME}: unknown remasking {settings['remasking']!r}; use {REMASKING_MODES}"
            )
        if settings["temperature"] < 0:
            raise EvalModelError(f"{self.NAME}: temperature must be >= 0")
        if settings["method"] == "threshold":
            settings["threshold"] = _as_float(args.pop("threshold", 0.9), "threshold")
        super()._sampler_settings(args)
        return settings

    def _generate(self, prompts: list[list[int]], gen_length: int) -> list[list[int]]:
        s = self.sampler
        extra = {"threshold": s["threshold"]} if "threshold" in s else {}
        return self.block_generate(
            prompts, gen_length, method=s["method"], remasking=s["remasking"],
            temperature=s["temperature"], generator=self.generator, **extra,
        )


@register_model("tide_llada2")
class LLaDA2EvalModel(TideLM):
    """Teacher A (LLaDA2-MoE) with its block sampler (report settings: block 32, threshold 0.95)."""

    MODEL_TYPE = "llada2_moe"
    NAME = "tide_llada2"

    def _sampler_settings(self, args: dict[str, Any]) -> dict[str, Any]:
        settings = {
            "block_size": _as_int(args.pop("block_size", 32), "block_size"),
            "steps": _as_int(args.pop("steps", 32), "steps"),
            "threshold": _as_float(args.pop("threshold", 0.95), "threshold"),
        }
        super()._sampler_settings(args)
        return settings

    def _generate(self, prompts: list[list[int]], gen_length: int) -> list[list[int]]:
        from tide.sampling.teachers import llada2_generate

        s = self.sampler
        out: list[list[int]] = [[] for _ in prompts]
        for indices in _by_length(prompts).values():
            batch = torch.tensor([prompts[i] for i in indices], device=self._device)
            rows = llada2_generate(
                self.model,
                batch,
                gen_length=gen_length,
                block_size=s["block_size"],
                steps=min(s["steps"], gen_length),
                threshold=s["threshold"],
                mask_id=self.mask_id(),
                eos_id=self.tokenizer.eos_token_id,
            )
            for i, row in zip(indices, rows):
                out[i] = row.tolist()
        return out


@register_model("tide_wedlm")
class WeDLMEvalModel(TideLM):
    """Teacher B (WeDLM). ``decoder=streaming`` (default): WeDLM's streaming parallel decoding
    (eval script: W=16, tau=0.4, lambda=0.02), one prompt at a time, as the released checkpoint
    was trained for; ``method=cached`` (default) caches the committed context (the same tokens as
    ``method=reference``). ``decoder=block``: the BD3LM block sampler (``block_size``, ``steps``,
    ``method`` cached by default, batched as the student's),
    the attention pattern TIDE queries teacher-B with and the one a teacher trained with the
    BD3LM objective (the tiny teacher-B) knows."""

    MODEL_TYPE = "wedlm"
    NAME = "tide_wedlm"
    STOP_ON_PAD = True
    DECODERS = ("streaming", "block")

    def _sampler_settings(self, args: dict[str, Any]) -> dict[str, Any]:
        from tide.sampling import SAMPLERS

        decoder = str(args.pop("decoder", "streaming"))
        if decoder not in self.DECODERS:
            raise EvalModelError(f"{self.NAME}: unknown decoder {decoder!r}; use {self.DECODERS}")
        if decoder == "block":
            steps = args.pop("steps", None)  # None: steps = generation length
            settings = {
                "decoder": decoder,
                "method": str(args.pop("method", DEFAULT_BLOCK_METHOD)),
                "block_size": _as_int(args.pop("block_size", 32), "block_size"),
                "steps": None if steps is None else _as_int(steps, "steps"),
            }
            methods = tuple(m for m in SAMPLERS if m != "threshold")
        else:
            methods = WEDLM_METHODS
            settings = {
                "method": str(args.pop("method", "cached")),
                "window": _as_int(args.pop("window", 16), "window"),
                "entropy_threshold": _as_float(
                    args.pop("entropy_threshold", 0.4), "entropy_threshold"),
                "distance_penalty": _as_float(
                    args.pop("distance_penalty", 0.02), "distance_penalty"),
            }
        if settings["method"] not in methods:
            raise EvalModelError(
                f"{self.NAME}: unknown method {settings['method']!r} for decoder={decoder}; "
                f"use {methods}"
            )
        super()._sampler_settings(args)
        return settings

    def _generate(self, prompts: list[list[int]], gen_length: int) -> list[list[int]]:
        from tide.sampling.teachers import wedlm_generate, wedlm_generate_cached

        s = self.sampler
        if s.get("decoder") == "block":
            return self.block_generate(prompts, gen_length, method=s["method"])
        decode = wedlm_generate_cached if s["method"] == "cached" else wedlm_generate
        return [
            decode(
                self.model,
                torch.tensor(p, device=self._device),
                max_new=gen_length,
                window=s["window"],
                entropy_threshold=s["entropy_threshold"],
                distance_penalty=s["distance_penalty"],
                mask_id=self.mask_id(),
                stop_ids=self.stop_ids,
            ).tolist()
            for p in prompts
        ]


@register_model("tide_ar")
class AREvalModel(TideLM):
    """The AR Qwen3 baseline: greedy HF ``generate`` on left-padded batches."""

    MODEL_TYPE = "qwen3"
    DENSE_MASK = False  # HF generate: causal, padding masks only (flash attention can apply)
    NAME = "tide_ar"

    def _generate(self, prompts: list[list[int]], gen_length: int) -> list[list[int]]:
        ids = self.left_padded(prompts)
        pad = self.tokenizer.pad_token_id
        lengths = torch.tensor([len(p) for p in prompts], device=self._device)
        columns = torch.arange(ids.shape[1], device=self._device)
        attention = (columns[None, :] >= (ids.shape[1] - lengths)[:, None]).long()
        out = self.model.generate(
            input_ids=ids,
            attention_mask=attention,
            max_new_tokens=gen_length,
            do_sample=False,
            eos_token_id=sorted(self.stop_ids),
            pad_token_id=pad,
        )
        return out[:, ids.shape[1] :].tolist()


MODEL_CLASSES: dict[str, type[TideLM]] = {
    cls.MODEL_TYPE: cls for cls in (BD3LMEvalModel, LLaDA2EvalModel, WeDLMEvalModel, AREvalModel)
}


def model_class_for(model_type: str) -> type[TideLM]:
    """Our lm-eval class for a checkpoint's ``model_type``."""
    if model_type not in MODEL_CLASSES:
        raise EvalModelError(
            f"no evaluation class for model_type {model_type!r} (known: {sorted(MODEL_CLASSES)})"
        )
    return MODEL_CLASSES[model_type]
