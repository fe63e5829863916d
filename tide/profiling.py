"""Peak memory and wall time of one model generating ``gen_length`` tokens, best of N after a warm-up
(method.md §(h): the paper's student 1.4 GB / 6.25 s vs LLaDA2.0-mini 31.3 GB / 32.55 s for 256
tokens on one H100 in bfloat16, best of five).

Run it through the CLI (one JSON per model, what rule ``profile_model`` writes)::

    python -m tide profile --model results/students/bd3lm --out results/profile/students/bd3lm.json
    python -m tide profile --shape student --out results/profile/shapes/student.json

``--model`` profiles a checkpoint (``tide.models.loading.load_model``, its tokenizer from the same
directory); ``--shape`` a model of a paper model's real shape built from its config with random
weights (``profile.random_weights_shapes``; ``tide.models.configs``), marked ``random_weights``.

Each model samples the way the evaluation samples it (``eval.sampler.<class>`` over the classes'
defaults, the block size of ``students.block_size``): the BD3LM student with
``tide.sampling.generate`` (``profile.method``, a registered sampler name), teacher A with
``llada2_generate``, teacher B with ``wedlm_generate`` (or the block sampler when
``eval.sampler.tide_wedlm.decoder`` is ``block``, as the tiny teacher-B). Generation never stops
early at an EOS unless ``profile.early_stop``: every run makes exactly ``gen_length`` tokens per
row, whatever the weights.

What is measured, per run (``warmup`` untimed runs first, then ``repeats`` timed ones):

- time: ``time.perf_counter`` around the sampler call; on CUDA after ``torch.cuda.synchronize()``
  on both sides. The best (smallest) run is the result.
- memory, CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` before each
  run: every tensor the caching allocator holds at the peak, weights included (not the allocator's
  reserved slack, not the CUDA context).
- memory, CPU: the process's peak resident set size during the run (``/proc/self/statm``, polled
  every millisecond by a thread) minus its resident size before the model was loaded (torch and
  the libraries already imported): weights + activations + allocator slack the run added. Peaks
  shorter than the polling interval may be missed; ``process_max_rss_bytes`` (``getrusage``, the
  exact high-water mark of the whole process, loading included) is recorded beside it.

The reported peak memory is the largest over the timed runs. Each record also holds the device,
dtype, attention implementation, sampler and its settings, prompt length, batch size, forward
passes per run, whether every run produced the same tokens, package versions and the git sha.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

ROLES = ("student", "teacher_a", "teacher_b")
MODEL_TYPE_ROLE = {"a2d-qwen3": "student", "llada2_moe": "teacher_a", "wedlm": "teacher_b"}
MASK_TOKENS = {"student": "<|mask|>", "teacher_a": "<|mask|>", "teacher_b": "<tool_response>"}
# the lm-eval class whose sampler settings (eval.sampler.<class>) a role samples with
EVAL_CLASS = {"student": "tide_bd3lm", "teacher_a": "tide_llada2", "teacher_b": "tide_wedlm"}
# the evaluation classes' defaults (tide.eval.models), under eval.sampler.<class>
SAMPLER_DEFAULTS = {
    "student": {"method": "reference", "steps": None, "remasking": "low_confidence",
                "temperature": 0.0},
    "teacher_a": {"steps": 32, "threshold": 0.95},
    "teacher_b": {"decoder": "streaming", "window": 16, "entropy_threshold": 0.4,
                  "distance_penalty": 0.02},
}  # fmt: skip
# the paper models' mask ids where the mask lives in the tokenizer only (the student: <|mask|>)
QWEN3_MASK_TOKEN_ID = 151669
POLL_S = 0.001


class ProfileError(ValueError):
    """A profile that cannot be taken as configured (unknown role or shape, bad settings)."""


# --------------------------------------------------------------------------------------------------
# Memory


def _rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc/self/statm``; elsewhere the peak so
    far from ``getrusage``)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _max_rss_bytes()


def _max_rss_bytes() -> int:
    """The process's resident high-water mark (``ru_maxrss``: kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _RssPeak:
    """Polls the resident set size in a thread while active; ``peak`` is the largest seen."""

    def __init__(self, interval: float = POLL_S):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self) -> _RssPeak:  # noqa: PYI034
        self.peak = _rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


# --------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Target:
    """What one profile generates with: the model, its role, mask/eos ids and the prompt batch."""

    model: Any
    role: str
    prompt_ids: torch.Tensor  # LongTensor[B, P]
    mask_id: int
    eos_id: int | None
    random_weights: bool


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProfileError("profile.device is cuda but no CUDA device is available")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The torch dtype of ``profile.dtype`` (a name of the schema's enum): ``auto`` is bfloat16 on
    CUDA (the paper's setting), float32 on CPU."""
    from tide.models.loading import DTYPE_NAMES

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPE_NAMES[name]


def sampler_settings(role: str, config: dict[str, Any]) -> dict[str, Any]:
    """The role's sampler settings: the evaluation class defaults, the block size of
    ``students.block_size``, ``eval.sampler.<class>``, and ``profile.method`` for the student.
    ``config``: a validated project config (those sections filled)."""
    if role not in ROLES:
        raise ProfileError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    chosen = dict(config["eval"]["sampler"][EVAL_CLASS[role]])
    settings = dict(SAMPLER_DEFAULTS[role])
    if role == "teacher_b" and chosen.get("decoder") == "block":
        settings = {"decoder": "block", "steps": None}
    if role != "teacher_b" or settings.get("decoder") == "block":
        settings["block_size"] = config["students"]["block_size"]
    settings |= chosen
    if role == "student" and config["profile"]["method"] is not None:
        settings["method"] = config["profile"]["method"]
    return settings


# --------------------------------------------------------------------------------------------------
# Generation


def _generator(target: Target, settings: dict[str, Any], gen_length: int, early_stop: bool
               ) -> tuple[str, Callable[[], torch.Tensor]]:
    """(sampler name, a call generating ``gen_length`` tokens per prompt row -> LongTensor[B, n])."""
    model, prompts = target.model, target.prompt_ids
    eos = target.eos_id if early_stop else None
    role, s = target.role, settings
    if role == "student" or (role == "teacher_b" and s.get("decoder") == "block"):
        from tide.sampling import SAMPLERS, generate

        method = s.get("method", "reference")
        if method not in SAMPLERS:
            raise ProfileError(f"unknown sampler method {method!r}; registered: {sorted(SAMPLERS)}")
        extra = {k: s[k] for k in ("remasking", "temperature") if k in s}
        extra |= {k: v for k, v in s.items()
                  if k not in ("method", "steps", "block_size", "remasking", "temperature",
                               "decoder")}
        if s.get("temperature", 0.0):
            extra["generator"] = torch.Generator(device=prompts.device).manual_seed(0)

        def run() -> torch.Tensor:
            if "generator" in extra:
                extra["generator"].manual_seed(0)
            return generate(model, prompts, gen_length=gen_length, steps=s["steps"] or gen_length,
                            block_size=s["block_size"], mask_id=target.mask_id, eos_id=eos,
                            pad_id=None, method=method, **extra)

        return f"tide.sampling.generate[{method}]", run
    if role == "teacher_a":
        from tide.sampling.teachers import llada2_generate

        def run() -> torch.Tensor:
            rows = llada2_generate(model, prompts, gen_length=gen_length,
                                   block_size=s["block_size"], steps=min(s["steps"], gen_length),
                                   threshold=s["threshold"], mask_id=target.mask_id, eos_id=eos)
            return _stack(rows)

        return "tide.sampling.teachers.llada2_generate", run
    from tide.sampling.teachers import wedlm_generate

    stops = () if eos is None else (eos,)

    def run() -> torch.Tensor:  # one prompt at a time, as the evaluation decodes
        return _stack([wedlm_generate(model, row, max_new=gen_length, window=s["window"],
                                      entropy_threshold=s["entropy_threshold"],
                                      distance_penalty=s["distance_penalty"],
                                      mask_id=target.mask_id, stop_ids=stops)
                       for row in prompts])

    return "tide.sampling.teachers.wedlm_generate", run


def _stack(rows: list[torch.Tensor]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r.cpu()
    return out


def _count_forwards(model) -> tuple[list[int], Any]:
    counter = [0]

    def hook(module, args, kwargs=None):
        counter[0] += 1

    return counter, model.register_forward_pre_hook(hook)


def measure(target: Target, settings: dict[str, Any], *, gen_length: int, repeats: int,
            warmup: int, early_stop: bool = False, baseline_rss: int | None = None
            ) -> dict[str, Any]:
    """Generate ``warmup`` untimed then ``repeats`` timed times; time (best of the timed runs),
    peak memory (largest of them), forwards per run, and whether all runs gave the same tokens."""
    if repeats < 1 or warmup < 0 or gen_length < 1:
        raise ProfileError("profile: repeats and gen_length must be >= 1, warmup >= 0")
    device = target.prompt_ids.device
    cuda = device.type == "cuda"
    sampler, run = _generator(target, settings, gen_length, early_stop)
    counter, handle = _count_forwards(target.model)
    times, peaks, forwards, digests, lengths = [], [], [], [], []
    try:
        for i in range(warmup + repeats):
            counter[0] = 0
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                start = time.perf_counter()
                out = run()
                torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - start
                peak = torch.cuda.max_memory_allocated(device)
            else:
                with _RssPeak() as rss:
                    start = time.perf_counter()
                    out = run()
                    elapsed = time.perf_counter() - start
                peak = rss.peak - (baseline_rss or 0)
            if i < warmup:
                continue
            times.append(elapsed)
            peaks.append(int(peak))
            forwards.append(counter[0])
            tokens = out.detach().cpu()
            digests.append(hashlib.sha256(tokens.numpy().tobytes()).hexdigest())
            lengths.append(int(tokens.shape[1]))
    finally:
        handle.remove()
    best = min(times)
    batch = int(target.prompt_ids.shape[0])
    return {
        "sampler": {"function": sampler, **settings},
        "gen_length": gen_length, "generated_tokens": max(lengths), "batch_size": batch,
        "prompt_tokens": int(target.prompt_ids.shape[1]), "early_stop": early_stop,
        "warmup": warmup, "repeats": repeats,
        "times_s": [round(t, 6) for t in times], "best_time_s": round(best, 6),
        "tokens_per_s": round(batch * max(lengths) / best, 3),
        "peak_memory_bytes": max(peaks), "peak_memory_runs_bytes": peaks,
        "forwards_per_run": forwards, "deterministic": len(set(digests)) == 1,
        "tokens_sha256": digests[0],
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Models: checkpoints and real shapes with random weights


def _prompt_ids(tokenizer, text: str) -> list[int]:
    """The prompt as the evaluation feeds it: one user turn through the chat template (thinking
    off), or the plain text when the tokenizer has no template."""
    from tide.tokenization import render_chat

    if tokenizer.chat_template:
        text = render_chat(tokenizer, [{"role": "user", "content": text}],
                           add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def checkpoint_target(model_dir: str | Path, section: dict[str, Any], device: torch.device,
                      dtype: torch.dtype, attention: str, tokenizer_dir: str | Path | None = None
                      ) -> Target:
    """A checkpoint (tide.models.loading.load_model) and its tokenizer's prompt batch."""
    from tide.models.loading import load_model, read_model_type, resolve_checkpoint_dir
    from tide.tokenization import load_tokenizer

    directory = resolve_checkpoint_dir(model_dir)
    role = MODEL_TYPE_ROLE.get(read_model_type(directory))
    if role is None:
        raise ProfileError(f"{directory}: not a diffusion model this stage profiles "
                           f"({', '.join(MODEL_TYPE_ROLE)})")
    model = load_model(directory, dtype=dtype, attention=attention, dense_mask=True).to(device)
    tokenizer = load_tokenizer(tokenizer_dir or directory, mask_token=MASK_TOKENS[role])
    ids = _prompt_ids(tokenizer, section["prompt"])
    prompts = torch.tensor([ids] * section["batch_size"], dtype=torch.long, device=device)
    mask = tokenizer.mask_token_id
    if mask is None:
        mask = model.config.mask_token_id
    return Target(model, role, prompts, int(mask), tokenizer.eos_token_id, False)


def shape_config(role: str, num_hidden_layers: int | None):
    """The config of a paper model's real shape (tide.models.configs) at ``num_hidden_layers``
    layers (None: full depth); returns (config, full depth)."""
    from tide.models import configs as c

    full = {"student": c.QWEN3_06B_LAYERS, "teacher_a": c.LLADA2_MINI_LAYERS,
            "teacher_b": c.WEDLM_8B_LAYERS}[role]
    layers = full if num_hidden_layers is None else num_hidden_layers
    factory = {"student": c.student_paper_config, "teacher_a": c.llada2_paper_config,
               "teacher_b": c.wedlm_paper_config}[role]
    return factory(layers), full


def shape_target(shape: dict[str, Any], section: dict[str, Any], device: torch.device,
                 dtype: torch.dtype, attention: str) -> Target:
    """A model of ``shape['role']``'s real shape with random weights (seed 0) and a prompt of
    ``shape['prompt_length']`` random token ids (seed 0) below every special id."""
    role = shape["role"]
    config, _ = shape_config(role, shape["num_hidden_layers"])
    if role == "student":
        from tide.models.student import A2DQwen3LMHeadModel as cls

        mask = QWEN3_MASK_TOKEN_ID
    elif role == "teacher_a":
        from tide.models.llada2 import LLaDA2MoeModelLM as cls

        mask = config.mask_token_id
    else:
        from tide.models.wedlm import WeDLMForCausalLM as cls

        mask = config.mask_token_id
    torch.manual_seed(0)
    model = cls._from_config(config, dtype=dtype).to(device).eval()  # SDPA: 4-D sampler masks
    eos = config.eos_token_id
    low = min(i for i in (config.pad_token_id, eos, mask) if i is not None)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, low, (1, shape["prompt_length"]), generator=gen)
    prompts = ids.expand(section["batch_size"], -1).contiguous().to(device)
    return Target(model, role, prompts, int(mask), eos, True)


def _describe(target: Target, device: torch.device) -> dict[str, Any]:
    model = target.model
    params = sum(p.numel() for p in model.parameters())
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return {
        "role": target.role, "model_type": model.config.model_type,
        "random_weights": target.random_weights,
        "num_hidden_layers": model.config.num_hidden_layers, "parameters": params,
        "weights_bytes": weights,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "attention": getattr(model.config, "_attn_implementation", None),
        "mask_id": target.mask_id, "eos_id": target.eos_id,
    }  # fmt: skip


def memory_measure(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated per run (reset before each): every allocated tensor, weights included"
    return ("peak resident set size of the process during the run (polled every 1 ms) minus its "
            "resident size before the model was loaded: weights + activations + allocator slack")


def profile(config: dict[str, Any], *, model_dir: str | Path | None = None,
            shape: str | None = None, tokenizer_dir: str | Path | None = None) -> dict[str, Any]:
    """Profile one checkpoint (``model_dir``) or one real shape with random weights (``shape``, a
    name in ``profile.random_weights_shapes``) under the config's ``profile`` section; returns the
    record (see the module docstring)."""
    if (model_dir is None) == (shape is None):
        raise ProfileError("profile: give a checkpoint directory or a shape name, not both")
    section = config["profile"]
    device = resolve_device(section["device"])
    dtype = resolve_dtype(section["dtype"], device)
    attention = config["attention"]
    gen_length, repeats = section["gen_length"], section["repeats"]
    import gc

    gc.collect()
    baseline = _rss_bytes()
    if shape is not None:
        shapes = {s["name"]: s for s in section["random_weights_shapes"]}
        if shape not in shapes:
            raise ProfileError(f"unknown shape {shape!r} (profile.random_weights_shapes: "
                               f"{', '.join(shapes) or 'none'})")
        spec = shapes[shape]
        target = shape_target(spec, section, device, dtype, attention)
        gen_length = spec["gen_length"] or gen_length
        repeats = spec["repeats"] or repeats
        where: dict[str, Any] = {"model": f"shapes/{shape}", "shape": spec,
                                 "full_depth": shape_config(spec["role"], None)[1]}
    else:
        target = checkpoint_target(model_dir, section, device, dtype, attention, tokenizer_dir)
        where = {"model": str(model_dir), "full_depth": None}
    settings = sampler_settings(target.role, config)
    if shape is not None and spec["block_size"] and "block_size" in settings:
        settings["block_size"] = spec["block_size"]  # the real model's block, not the tiny one
    log.info("profiling %s (%s, %s, %s): %d tokens, %d warm-up + %d runs", where["model"],
             target.role, device, dtype, gen_length, section["warmup"], repeats)
    result = measure(target, settings, gen_length=gen_length, repeats=repeats,
                     warmup=section["warmup"], early_stop=section["early_stop"],
                     baseline_rss=None if device.type == "cuda" else baseline)
    info = where | _describe(target, device) | result
    info["memory_measure"] = memory_measure(device)
    if device.type == "cpu":
        info["baseline_rss_bytes"] = baseline
        info["process_max_rss_bytes"] = _max_rss_bytes()
    info["torch_threads"] = torch.get_num_threads()
    return info


def write_profile(path: str | Path, info: dict[str, Any], config: dict[str, Any]) -> Path:
    """The record ``info`` with its provenance: ``config`` (the config keys the stage read,
    :func:`tide.provenance.config_record`), versions, git sha."""
    from tide.provenance import write_record

    return write_record(path, json.loads(json.dumps(config, default=str)), None, **info)
