"""The paper's distillation data (method.md §(f)): a mixture of public chat datasets, read through
``datasets`` and written as chat rows (``{"family", "id", "messages"}``, the world's row format), so
that alignment renders each row with the student's and the teacher's own chat templates.

Each part of the mixture (config ``data.mixture.<name>``) names a dataset, its configs and split, a
row format (``messages``: a list of ``{role, content}``; ``instruction_output``: one user turn and one
assistant turn), an optional held-out fraction (``train_test_split`` with the part's seed: the paper
trains on the rest) and an optional substring the assistant text must contain. Parts marked
``probe`` give the probe rows (the teacher-signal stage) from their held-out rows. Mixing is plain
concatenation; the trainer shuffles.

``data.local_dir`` holds local copies laid out as ``<local_dir>/<dataset id>/<config>/*.jsonl`` (or
``*.parquet``; ``default`` for a dataset without configs), read instead of the hub.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from tide.outputs import replace_lines
from tide.training.data import DataError

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
FORMATS = ("messages", "instruction_output")
DISTILL_FILE, PROBE_FILE = "distill.jsonl", "probe.jsonl"


def local_files(local_dir: str | Path, dataset: str, config: str | None) -> list[Path]:
    """The data files of a local copy (``[]`` when there is none)."""
    folder = Path(local_dir) / dataset / (config or "default")
    return sorted([*folder.glob("*.jsonl"), *folder.glob("*.parquet")]) if folder.is_dir() else []


def load_part(dataset: str, config: str | None, split: str, local_dir: str | Path | None):
    """One (dataset, config, split) as a ``datasets.Dataset``: the local copy when there is one,
    else the hub (a clear error when offline)."""
    import datasets

    files = local_files(local_dir, dataset, config) if local_dir else []
    where = f"{dataset}" + (f" ({config})" if config else "")
    try:
        if files:
            builder = "parquet" if files[0].suffix == ".parquet" else "json"
            return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
        return datasets.load_dataset(dataset, config, split=split)
    except Exception as err:  # datasets raises many types for missing data or no network
        hint = (f"; no local copy under {Path(local_dir) / dataset / (config or 'default')}"
                if local_dir else "; set data.local_dir to read local copies")
        raise DataError(f"cannot load {where} split {split!r}: {err}{hint}") from err


def _messages(row: dict, where: str) -> list[dict]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: expected a non-empty 'messages' list")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: a message must be {{role: {'|'.join(ROLES)}, content: str}}, "
                            f"got {str(m)[:120]!r}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _instruction_output(row: dict, where: str) -> list[dict]:
    if not isinstance(row.get("instruction"), str) or not isinstance(row.get("output"), str):
        raise DataError(f"{where}: expected string fields 'instruction' and 'output'")
    return [{"role": "user", "content": row["instruction"]},
            {"role": "assistant", "content": row["output"]}]


def chat_rows(rows, name: str, config: str | None, fmt: str, require: str | None,
              ) -> Iterator[dict]:
    """Chat rows of one loaded part: those that end with an assistant turn and (with ``require``)
    whose assistant text contains it. A malformed row raises DataError naming part and index."""
    if fmt not in FORMATS:
        raise DataError(f"data.mixture.{name}: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    read = _messages if fmt == "messages" else _instruction_output
    for index, row in enumerate(rows):
        where = f"data.mixture.{name} ({config or 'default'}) row {index}"
        messages = read(row, where)
        if messages[-1]["role"] != "assistant":
            continue
        if require and not any(require in m["content"] for m in messages if m["role"] == "assistant"):
            continue
        yield {"family": name, "id": f"{name}/{config or 'default'}/{index}", "messages": messages}


def _split(ds, holdout: float, seed: int):
    """``(train, held out)``: HF's ``train_test_split`` at ``holdout`` with ``seed`` (none: all
    rows train)."""
    if not holdout:
        return ds, None
    parts = ds.train_test_split(test_size=holdout, seed=seed)
    return parts["train"], parts["test"]


def _training_rows(section: dict, counts: dict, held_out: list) -> Iterator[str]:
    """JSON lines of every part's training rows, streamed; each part's held-out probe candidates
    are appended to ``held_out`` (up to ``probe_rows``) and its counts to ``counts``."""
    for name, part in section["mixture"].items():
        kept = held = 0
        for config in part["configs"]:
            ds = load_part(part["dataset"], config, part["split"], section["local_dir"])
            train, test = _split(ds, part["holdout"], part["seed"])
            for row in chat_rows(train, name, config, part["format"], part["require"]):
                kept += 1
                yield json.dumps(row, ensure_ascii=False) + "\n"
            if part["probe"] and test is not None:
                for row in chat_rows(test, name, config, part["format"], part["require"]):
                    held += 1
                    if len(held_out) < section["probe_rows"]:
                        held_out.append(json.dumps(row, ensure_ascii=False) + "\n")
        counts[name] = {"distill": kept, "probe_candidates": held}
        log.info("data.mixture.%s: %d training rows, %d held-out probe candidates", name, kept, held)


def build_mixture(section: dict, out_dir: str | Path) -> dict:
    """Write ``out_dir/distill.jsonl`` (every part's training rows, streamed) and
    ``out_dir/probe.jsonl`` (the first ``probe_rows`` held-out rows of the ``probe`` parts);
    returns the row counts per part. A failure leaves both files as they were."""
    out_dir = Path(out_dir)
    if not section["mixture"]:
        raise DataError("data.mixture is empty: name the datasets of the distillation data")
    counts: dict[str, dict] = {}
    probe: list[str] = []
    distill = out_dir / DISTILL_FILE
    staged = distill.with_name(distill.name + ".new")
    replace_lines(staged, _training_rows(section, counts, probe))
    if not probe:
        staged.unlink()
        raise DataError("no probe rows: mark a part with held-out rows `probe: true`")
    replace_lines(out_dir / PROBE_FILE, probe)
    staged.replace(distill)
    return {"parts": counts, "distill": sum(c["distill"] for c in counts.values()),
            "probe": len(probe)}
