"""Load a teacher or student checkpoint (local directory or hub id) into our own transformers
classes.

``load_model`` reads ``config.json``'s ``model_type``, imports the module that registers that type
(ours: ``tide.models.llada2`` -> ``"llada2_moe"``, ``tide.models.wedlm`` -> ``"wedlm"``,
``tide.models.student`` -> ``"a2d-qwen3"``), checks the files (config, weights, safetensors headers
and sizes) and calls the matching Auto class without ``trust_remote_code``. Every problem with the
files raises ``CheckpointError`` naming the file. Saving is plain
``model.save_pretrained(directory)``.

Attention: SDPA unless the caller asks otherwise (:func:`attn_implementation`, the config's
``attention`` key).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import re
import struct
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
TORCH_WEIGHTS_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")

# model_type -> module whose import registers it with transformers
REGISTERING_MODULES = {
    "llada2_moe": "tide.models.llada2",
    "wedlm": "tide.models.wedlm",
    "a2d-qwen3": "tide.models.student",
}
# model_type -> Auto class to load it with; other registered types: the first Auto class that knows
# the config
PREFERRED_AUTO_CLASS = {"llada2_moe": AutoModelForMaskedLM, "wedlm": AutoModelForCausalLM}
FALLBACK_AUTO_CLASSES = (AutoModelForMaskedLM, AutoModelForCausalLM)
# short names accepted for `kind`
KIND_ALIASES = {
    "llada2": "llada2_moe",
    "teacher_a": "llada2_moe",
    "teacher_b": "wedlm",
    "student": "a2d-qwen3",
}
# files fetched for a hub id (weights, configs, tokenizer); never remote code
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "tokenizer*"]
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# parameters that may be absent from a checkpoint (zero-filled, with a warning)
ZERO_FILLED_KEY_PATTERN = re.compile(r"(^|\.)expert_bias$")

SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint directory or file is missing, incomplete or not loadable; the message names the
    file."""


# --------------------------------------------------------------------------------------------------
# File checks


def check_safetensors_file(path: str | Path) -> None:
    """Check a ``.safetensors`` file's header and size before torch reads it; raise
    ``CheckpointError`` if broken.

    Layout: 8-byte little-endian header length ``n``, ``n`` bytes of JSON ``{name: {dtype, shape,
    data_offsets}}``, then the data; the file must end exactly where the last tensor ends and each
    tensor's byte span must match its dtype and shape.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"truncated safetensors file {path}: {size} bytes, no header")
    with path.open("rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        if 8 + header_len > size:
            raise CheckpointError(
                f"truncated safetensors file {path}: header claims {header_len} bytes, "
                f"file has {size} bytes"
            )
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"corrupt safetensors header in {path}: {err}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"corrupt safetensors header in {path}: not a JSON object")
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            expected = math.prod(entry["shape"]) * SAFETENSORS_DTYPE_BYTES[entry["dtype"]]
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"corrupt safetensors header in {path}: bad entry for tensor {name!r} ({err})"
            ) from None
        if not 0 <= begin <= end or end - begin != expected:
            raise CheckpointError(
                f"corrupt safetensors header in {path}: tensor {name!r} "
                f"spans bytes [{begin}, {end}) "
                f"but {entry['dtype']}{entry['shape']} needs {expected}"
            )
        data_end = max(data_end, end)
    expected_size = 8 + header_len + data_end
    if size < expected_size:
        raise CheckpointError(
            f"truncated safetensors file {path}: {size} bytes, the header needs "
            f"{expected_size} (incomplete download?)"
        )
    if size > expected_size:
        raise CheckpointError(
            f"corrupt safetensors file {path}: {size - expected_size} unexpected trailing bytes"
        )


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint directory (single file or every shard of an index), all
    checked to exist."""
    single = directory / SAFETENSORS_FILE
    if single.is_file():
        return [single]
    index = directory / SAFETENSORS_INDEX_FILE
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
            raise CheckpointError(f"corrupt weight index {index}: {err!r}") from None
        files = [directory / shard for shard in shards]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(
                f"missing weights file(s) listed in {index}: {', '.join(missing)}"
            )
        return files
    for name in TORCH_WEIGHTS_FILES:
        if (directory / name).is_file():
            return [directory / name]
    raise CheckpointError(
        f"missing weights file in {directory}: expected {SAFETENSORS_FILE}, "
        f"{SAFETENSORS_INDEX_FILE} "
        f"or {TORCH_WEIGHTS_FILES[0]}"
    )


def read_model_type(directory: Path) -> str:
    """``model_type`` from ``directory/config.json``; ``CheckpointError`` if the file is missing or
    unreadable."""
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"missing {CONFIG_FILE} in checkpoint directory {directory}")
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"corrupt {config_path}: {err}") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise CheckpointError(f"{config_path} has no 'model_type' string")
    return model_type


# --------------------------------------------------------------------------------------------------
# Resolution of names, types and classes


def _download_snapshot(repo_id: str) -> Path:
    """Fetch (or reuse from the hub cache) the files of a hub model; returns the local snapshot
    directory."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS))


def resolve_checkpoint_dir(name_or_path: str | Path) -> Path:
    """A local directory as is; a hub id (``owner/name`` that is not a local path) via the hub
    cache."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"checkpoint path {path} is a file, expected a directory")
    if isinstance(name_or_path, str) and HUB_ID_PATTERN.match(name_or_path):
        try:
            return _download_snapshot(name_or_path)
        except Exception as err:  # hub errors come in many classes; report them in one place
            raise CheckpointError(
                f"{name_or_path!r} is not a local directory and could not be fetched "
                f"from the hub: {err}"
            ) from err
    raise CheckpointError(f"missing checkpoint directory {path}")


def _import_registering_module(model_type: str) -> None:
    """Import our own model modules (and the one registering ``model_type``) so the Auto classes
    know them."""
    for module_type in ("llada2_moe", "wedlm"):
        importlib.import_module(REGISTERING_MODULES[module_type])
    module = REGISTERING_MODULES.get(model_type)
    if module is not None:
        importlib.import_module(module)


def auto_class_for(model_type: str, config_path: Path) -> type:
    """The Auto class to load ``model_type`` with; ``CheckpointError`` naming ``config_path`` if
    none knows it."""
    if model_type not in CONFIG_MAPPING:
        known = ", ".join(sorted(REGISTERING_MODULES))
        raise CheckpointError(f"unknown model_type {model_type!r} in {config_path} (ours: {known})")
    if model_type in PREFERRED_AUTO_CLASS:
        return PREFERRED_AUTO_CLASS[model_type]
    config_class = CONFIG_MAPPING[model_type]
    for auto_class in FALLBACK_AUTO_CLASSES:
        if config_class in auto_class._model_mapping:
            return auto_class
    raise CheckpointError(
        f"model_type {model_type!r} in {config_path} has no masked-LM or causal-LM class"
    )


DTYPE_NAMES = {
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
}  # fmt: skip


def _torch_dtype(dtype: str | torch.dtype | None) -> str | torch.dtype:
    """``None`` -> ``"auto"`` (the checkpoint's dtype); a name such as ``"bf16"`` ->
    ``torch.dtype``."""
    if dtype is None:
        return "auto"
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in DTYPE_NAMES:
        raise ValueError(
            f"unknown dtype {dtype!r}; use one of {sorted(DTYPE_NAMES)} or a torch.dtype"
        )
    return DTYPE_NAMES[dtype]


# --------------------------------------------------------------------------------------------------
# Attention implementation

ATTENTION_CHOICES = ("auto", "sdpa", "flash_attention_2")


def flash_attn_available() -> bool:
    """Whether the ``flash_attn`` package (the optional ``gpu`` extra) imports; imported only here,
    when flash attention is asked for."""
    try:
        importlib.import_module("flash_attn")
    except ImportError:
        return False
    return True


def attn_implementation(requested: str = "sdpa", *, dense_mask: bool = False,
                        model_class: type | None = None) -> str:
    """The attention implementation to load a model with: ``"flash_attention_2"`` or ``"sdpa"``.

    ``requested`` (the config's ``attention``): ``sdpa``; ``flash_attention_2``; or ``auto``, flash
    attention where it can run. Flash attention needs the ``flash_attn`` package and a CUDA device,
    and applies only to passes whose mask is at most a 2-D padding mask ``[B, L]`` (or none): full
    attention or causal passes, i.e. sampling and evaluation of the AR student, and of the teachers
    where they attend fully (Pipeline A's teacher in distillation, ``[B, L_T]`` padding mask). It
    cannot take the dense 4-D masks ``[B, 1, Lq, Lk]`` of block diffusion: the BD3LM student on
    ``[xt ; x0]`` (training, distillation, block sampling) and Pipeline B's teacher on ``[y0 ; yt]``.
    A caller that passes such masks says ``dense_mask=True`` and gets SDPA. ``model_class``, when
    given, must declare flash support (``_supports_flash_attn``; our LLaDA2 class does not).
    Every fallback from a requested or ``auto`` flash attention is logged with its reason (a warning
    when flash attention was requested by name).
    """
    if requested not in ATTENTION_CHOICES:
        raise ValueError(f"unknown attention {requested!r} (one of {', '.join(ATTENTION_CHOICES)})")
    if requested == "sdpa":
        return "sdpa"
    if dense_mask:
        reason = "the model is given 4-D block-diffusion masks, which flash attention cannot take"
    elif model_class is not None and not getattr(model_class, "_supports_flash_attn", False):
        reason = f"{model_class.__name__} does not support flash attention"
    elif not flash_attn_available():
        reason = "flash_attn is not installed (pip install '.[gpu]')"
    elif not torch.cuda.is_available():
        reason = "no CUDA device"
    else:
        return "flash_attention_2"
    (log.warning if requested == "flash_attention_2" else log.info)(
        "attention %s: using sdpa, %s", requested, reason)
    return "sdpa"


# --------------------------------------------------------------------------------------------------
# Loading


def _report_loading_info(model: PreTrainedModel, info: dict, weights: list[Path]) -> None:
    """Zero-fill and warn about missing ``expert_bias``; warn about unexpected keys; raise on other
    missing keys."""
    names = ", ".join(str(w) for w in weights)
    missing = sorted(info.get("missing_keys") or [])
    zero_filled = [key for key in missing if ZERO_FILLED_KEY_PATTERN.search(key)]
    missing = [key for key in missing if key not in zero_filled]
    if missing:
        shown = ", ".join(missing[:8]) + (
            f" ... ({len(missing)} in all)" if len(missing) > 8 else ""
        )
        raise CheckpointError(f"weights missing from {names}: {shown}")
    if zero_filled:
        state = model.state_dict()
        with torch.no_grad():
            for key in zero_filled:
                state[key].zero_()
        warnings.warn(
            f"{len(zero_filled)} expert_bias buffers absent from {names}; filled with zeros",
            stacklevel=3,
        )
    unexpected = sorted(info.get("unexpected_keys") or [])
    if unexpected:
        shown = ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else "")
        warnings.warn(
            f"ignored {len(unexpected)} unexpected keys in {names} (e.g. MTP layers): {shown}",
            stacklevel=3,
        )


def load_model(
    name_or_path: str | Path, *, dtype: str | torch.dtype | None = None, kind: str | None = None,
    attention: str = "sdpa", dense_mask: bool = True,
) -> PreTrainedModel:
    """Load a checkpoint into our classes, in eval mode.

    Args:
        name_or_path: local checkpoint directory, or a hub id such as
            ``"inclusionAI/LLaDA2.0-mini"`` or ``"tencent/WeDLM-8B-Instruct"`` (via the hub cache).
        dtype: ``None`` keeps the checkpoint's dtype; else a ``torch.dtype`` or a name
            (``"bfloat16"``, ``"bf16"``).
        kind: optional expected ``model_type`` (or alias ``"llada2"``, ``"teacher_a"``,
            ``"teacher_b"``, ``"student"``); another type raises ``CheckpointError``.
        attention: ``"sdpa"`` (default), ``"flash_attention_2"`` or ``"auto"``, resolved by
            :func:`attn_implementation` (SDPA wherever flash attention cannot run).
        dense_mask: the caller passes 4-D attention masks (block diffusion; the default, as for
            every training stage): SDPA whatever ``attention`` says. ``False`` only for passes with
            padding masks or none (sampling/evaluation with full or causal attention).

    Returns the model (``LLaDA2MoeModelLM`` for ``"llada2_moe"``, ``WeDLMForCausalLM`` for
    ``"wedlm"``, the student class for ``"a2d-qwen3"``) with SDPA (or flash) attention. Raises
    ``CheckpointError`` for a missing directory, ``config.json`` or weights file, a
    truncated/corrupt safetensors file, an unknown ``model_type``, weights missing from the
    checkpoint, or a load failure.
    """
    directory = resolve_checkpoint_dir(name_or_path)
    model_type = read_model_type(directory)
    if kind is not None and KIND_ALIASES.get(kind, kind) != model_type:
        raise CheckpointError(
            f"{directory / CONFIG_FILE} has model_type {model_type!r}, "
            f"expected {KIND_ALIASES.get(kind, kind)!r}"
        )
    weights = weight_files(directory)
    for path in weights:
        if path.suffix == ".safetensors":
            check_safetensors_file(path)
    _import_registering_module(model_type)
    auto_class = auto_class_for(model_type, directory / CONFIG_FILE)
    torch_dtype = _torch_dtype(dtype)
    impl = "sdpa"
    if attention != "sdpa":
        impl = attn_implementation(attention, dense_mask=dense_mask,
                                   model_class=auto_class._model_mapping.get(CONFIG_MAPPING[model_type], None))
    try:
        model, info = auto_class.from_pretrained(
            directory, dtype=torch_dtype, attn_implementation=impl, output_loading_info=True
        )
    except (OSError, RuntimeError, ValueError) as err:
        raise CheckpointError(
            f"could not load checkpoint {directory} ({model_type}): {err}"
        ) from err
    _report_loading_info(model, info, weights)
    return model.eval()
