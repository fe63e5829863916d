"""Released checkpoints at paper scale: fetched from the hub (or taken from a local directory),
verified, and saved where the DAG expects them.

Verification, each recorded in the output's ``provenance.json``: the ``model_type`` is the expected
one; the parameter count (read from the safetensors headers, before loading) lies within 1% of the
expected one; the sha256 of every weight file; and a likelihood check: the model's mean negative
log-likelihood of assistant tokens of a few chat rows (an AR model scores each next token; a
diffusion model every ``MASK_EVERY``-th assistant token, replaced by its mask, from the rest of the
row, with the attention the study queries it with) must lie well below the uniform ``ln |V|``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it runs: the CLI reads PREPARED when it starts
    import torch

log = logging.getLogger(__name__)

PARAMETER_TOLERANCE = 0.01
# a model that knows the language scores assistant tokens far better than uniform: ln|V| ~ 11.9
MAX_NLL_FRACTION = 0.6
MASK_EVERY = 7


# role -> (config group, key, model kind, likelihood query): what `python -m tide prepare --role`
# prepares, each queried as the study queries it
PREPARED = {
    "teacher_a": ("teachers", "a", "teacher_a", "full"),
    "teacher_b": ("teachers", "b", "teacher_b", "teacher_b"),
    "ar": ("students", "ar", "qwen3", "causal"),
    "bd3lm": ("students", "sft", "student", "student"),
}


class VerificationError(RuntimeError):
    """A released checkpoint that is not the one the config expects; names what differs."""


def sha256(path: str | Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def count_parameters(files: list[Path]) -> int:
    """Elements of every tensor in safetensors ``files``, from their headers (nothing loaded)."""
    from safetensors import safe_open

    total = 0
    for path in files:
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                total += math.prod(fh.get_slice(name).get_shape())
    return total


def verify_files(directory: Path, expect: dict) -> dict:
    """Config and weights of a checkpoint directory against ``expect`` (``model_type``,
    ``parameters``: null = record only); returns what was found."""
    from tide.models.loading import read_model_type, weight_files

    model_type = read_model_type(directory)
    if expect.get("model_type") and model_type != expect["model_type"]:
        raise VerificationError(f"{directory}: model_type {model_type!r}, expected "
                                f"{expect['model_type']!r}")
    files = weight_files(directory)
    params = count_parameters([f for f in files if f.suffix == ".safetensors"])
    want = expect.get("parameters")
    if want and abs(params - want) > PARAMETER_TOLERANCE * want:
        raise VerificationError(f"{directory}: {params:,} parameters, expected {want:,} "
                                f"(±{PARAMETER_TOLERANCE:.0%})")
    return {"model_type": model_type, "parameters": params,
            "sha256": {f.name: sha256(f) for f in files}}


def _logits(model, ids: torch.Tensor, scored: torch.Tensor, query: str, mask_id: int | None,
            block_size: int) -> torch.Tensor:
    """Logits ``[1, L, V]`` scoring each position of ``ids [1, L]``, as ``query`` asks the model:
    ``causal`` the next token (the caller shifts the targets), ``full`` masks under full attention
    (LLaDA2, Pipeline A), ``student`` / ``teacher_b`` masks under the BD3LM block mask (the
    student's ``[xt ; x0]``, the WeDLM teacher's ``[y0 ; yt]``, as distillation queries them)."""
    import torch

    from tide import diffusion

    if query == "causal":
        return model(input_ids=ids).logits
    xt = diffusion.noise(ids, scored, mask_id)
    if query == "student":
        return diffusion.student_logits(model, xt, ids, block_size)
    if query == "teacher_b":
        from tide.distill.trainer import teacher_token_logits

        return teacher_token_logits(model, ids, torch.ones_like(scored), scored, mask_id, block_size)
    logits = model(input_ids=xt).logits
    return diffusion.shift_logits_right(logits) if diffusion.uses_right_shift(model) else logits


def assistant_nll(model, tokenizer, rows: list[dict], *, query: str, mask_id: int | None,
                  block_size: int, max_length: int = 256) -> float:
    """Mean NLL (nats) of assistant tokens of ``rows`` (chat rows): every next token for a causal
    model; for a diffusion model every ``MASK_EVERY``-th assistant token, replaced by ``mask_id``
    and scored at its own position, queried as ``query`` says (see :func:`_logits`)."""
    import torch

    from tide.training.data import chat_example

    total, count = 0.0, 0
    for row in rows:
        example = chat_example(tokenizer, row["messages"], max_length)
        if example is None:
            continue
        ids = torch.tensor([example["input_ids"]])
        target = torch.tensor([example["labels"]])
        scored = target != -100
        if query == "causal":
            target, scored = torch.roll(target, -1, 1), torch.roll(scored, -1, 1)
            scored[:, -1] = False
        else:
            scored &= torch.arange(ids.shape[1]) % MASK_EVERY == MASK_EVERY // 2
        with torch.no_grad():
            logits = _logits(model, ids, scored, query, mask_id, block_size)
        logp = torch.log_softmax(logits.float(), -1)
        picked = logp.gather(-1, target.clamp_min(0)[..., None])[..., 0]
        total += float(-(picked * scored).sum())
        count += int(scored.sum())
    if count == 0:
        raise VerificationError("likelihood check: no assistant token in the sanity rows")
    return total / count


def prepare_pretrained(source: str, out_dir: str | Path, *, kind: str, expect: dict,
                       tokenizer_dir: str | Path, rows: list[dict], query: str,
                       block_size: int, dtype: str | None = None) -> dict:
    """Fetch ``source`` (hub id or directory), verify it (``expect``; likelihood on ``rows`` with
    the tokenizer of ``tokenizer_dir``; no rows, no likelihood check), save it to ``out_dir`` as one ``model.safetensors`` beside
    its config and tokenizer; returns the verification record."""
    from tide.models.loading import load_model, resolve_checkpoint_dir
    from tide.outputs import fresh_output_dir
    from tide.tokenization import load_tokenizer, tokenizer_meta

    directory = resolve_checkpoint_dir(source)
    found = verify_files(directory, expect)
    model = load_model(directory, kind=kind, dtype=dtype)
    tokenizer = load_tokenizer(tokenizer_dir)
    bound = MAX_NLL_FRACTION * math.log(len(tokenizer))
    nll = None if not rows else assistant_nll(model, tokenizer, rows, query=query,
                                              block_size=block_size,
                                              mask_id=tokenizer_meta(tokenizer)["mask_token_id"])
    if nll is not None and not nll < bound:
        raise VerificationError(f"{source}: assistant-token NLL {nll:.3f} nats on {len(rows)} chat "
                                f"rows, not below {bound:.2f} ({MAX_NLL_FRACTION} ln|V|): not a "
                                "trained model, or the wrong tokenizer or mask id")
    out = fresh_output_dir(out_dir)
    model.save_pretrained(out, max_shard_size="1000GB")  # one model.safetensors, as the DAG declares
    tokenizer.save_pretrained(out)
    record = {"source": source, "resolved": str(directory), **found,
              "likelihood": {"rows": len(rows), "assistant_nll": nll, "bound": bound,
                             "query": query}}
    log.info("%s verified: %s parameters, assistant NLL %s (bound %.2f)", source,
             f"{found['parameters']:,}", "not checked" if nll is None else f"{nll:.3f}", bound)
    (out / "verification.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def prepare_role(role: str, config: dict, tokenizer_dir: str | Path, rows_path: str | Path,
                 out_dir: str | Path) -> dict:
    """``python -m tide prepare``: the released checkpoint of ``role`` (a key of ``PREPARED``),
    as its config section names it, verified on the first ``expect.rows`` rows of ``rows_path``."""
    from tide.training.data import read_jsonl

    group, key, kind, query = PREPARED[role]
    section = config[group][key]
    if section.get("right_shift_logits"):
        raise ValueError(f"{group}.{key}.right_shift_logits applies to teachers trained here, not "
                         "to a released one (they do not shift)")
    if not section["pretrained"]:
        raise ValueError(f"{group}.{key}.pretrained is not set: nothing to prepare")
    expect = section["expect"]
    rows = list(read_jsonl(rows_path, required=("messages",)))[: expect["rows"]]
    return prepare_pretrained(section["pretrained"], out_dir, kind=kind, expect=expect,
                              tokenizer_dir=tokenizer_dir, rows=rows, query=query,
                              block_size=config["students"]["block_size"])
