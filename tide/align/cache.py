"""The alignment of a whole distill split, computed once and stored in one safetensors file.

Format: flat ``int32`` tensors with ``int64`` row offsets (CSR layout): ``input_ids``/``labels``
(offsets ``student_offsets``), ``teacher_input_ids`` (``teacher_offsets``), ``line`` (source line of
each row) and, for Pipeline A, ``chunks [M, 4]`` (``chunk_offsets``), for Pipeline B
``align_student``/``align_teacher`` (``align_offsets``). The header metadata ``tide_alignment`` holds
JSON: format, pipeline, lengths, sources and the summary statistics. Why safetensors: no pickle
(loading cannot run code), memory-mappable, compact (a few bytes per token), readable outside torch.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from tide.align.cross import align_conversation
from tide.align.positions import align_positions
from tide.align.tokens import AlignmentError
from tide.jsonl import iter_jsonl
from tide.pipelines import get_pipeline, pipeline_with_letter
from tide.tokenization import PRETRAINED_MASKS, load_tokenizer

FORMAT = "tide-alignment/1"
META_KEY = "tide_alignment"
ROW_FIELDS = {  # per alignment kind (tide.pipelines): (field, offsets) stored as flat int32 tensors
    "chunks": (
        ("input_ids", "student_offsets"),
        ("labels", "student_offsets"),
        ("teacher_input_ids", "teacher_offsets"),
        ("chunks", "chunk_offsets"),
    ),
    "positions": (
        ("input_ids", "student_offsets"),
        ("labels", "student_offsets"),
        ("teacher_input_ids", "teacher_offsets"),
        ("align_student", "align_offsets"),
        ("align_teacher", "align_offsets"),
    ),
}


def read_conversations(path: Path) -> Iterator[tuple[int, list]]:
    """``(line number, messages)`` of each non-blank line; a broken line raises AlignmentError."""
    for lineno, row in iter_jsonl(path, AlignmentError):
        if not isinstance(row, dict) or "messages" not in row:
            raise AlignmentError(f"{path}:{lineno}: expected an object with a 'messages' list")
        yield lineno, row["messages"]


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def build_alignment_cache(
    pipeline: str,
    student_dir: str | Path,
    teacher_dir: str | Path,
    distill_jsonl: str | Path,
    out_path: str | Path,
    *,
    max_student_len: int,
    max_teacher_len: int,
    stats_path: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Align every conversation of ``distill_jsonl`` once and write ``out_path`` (safetensors).

    ``pipeline`` ``"cross"`` (chunks, :func:`align_conversation`) or ``"shared"`` (positions,
    :func:`align_positions`); the header stores its letter (A, B). Summary statistics are returned, stored in the file's metadata and
    written as JSON to ``stats_path`` (default: ``out_path`` with suffix ``.stats.json``). Rows whose
    prompt does not fit ``max_student_len`` are dropped and counted; a broken row raises
    :class:`AlignmentError` naming the file and line.
    """
    pipe = get_pipeline(pipeline)
    source = Path(distill_jsonl)
    if not source.is_file():
        raise FileNotFoundError(f"distill split not found: {source}")
    student = load_tokenizer(student_dir)
    teacher = load_tokenizer(teacher_dir, mask_token=PRETRAINED_MASKS[pipe.tokenizer])
    packer, summary, dropped = RowPacker(pipe.alignment), Summary(pipe.alignment), 0
    bar = tqdm(
        read_conversations(source),
        total=_count_lines(source),
        desc=f"align {pipe.name}",
        unit="row",
        mininterval=1.0,
        disable=not progress,
    )
    align = align_conversation if pipe.chunk_level else align_positions
    for lineno, messages in bar:
        try:
            ex = align(
                student,
                teacher,
                messages,
                max_student_len=max_student_len,
                max_teacher_len=max_teacher_len,
            )
        except Exception as err:  # any failure inside a row is reported with its location
            raise AlignmentError(
                f"{source}:{lineno}: cannot align this conversation: {err}"
            ) from err
        if ex is None:
            dropped += 1
            continue
        packer.add(ex, lineno)
        summary.add(ex)
    if not summary.rows:
        raise AlignmentError(
            f"{source}: no usable rows (all prompts >= max_student_len={max_student_len}?)"
        )
    stats = summary.result(dropped)
    meta = {
        "format": FORMAT,
        "pipeline": pipe.letter,
        "source": str(source),
        "student": str(student_dir),
        "teacher": str(teacher_dir),
        "max_student_len": max_student_len,
        "max_teacher_len": max_teacher_len,
        "stats": stats,
    }
    _write(Path(out_path), packer.tensors(), meta)
    stats_file = (
        Path(stats_path) if stats_path is not None else Path(out_path).with_suffix(".stats.json")
    )
    stats_file.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return stats


class RowPacker:
    """Collects aligned rows straight into flat int32 buffers (the file format of this module)."""

    def __init__(self, alignment: str):
        self.fields = ROW_FIELDS[alignment]
        self.flat = {field: array("i") for field, _ in self.fields}
        self.offsets = {offsets: array("q", [0]) for _, offsets in self.fields}
        self.lines = array("q")

    def add(self, row: dict, line: int) -> None:
        self.lines.append(line)
        lengths: dict[str, int] = {}
        for field, offsets in self.fields:
            values = row[field]
            if field == "chunks":
                self.flat[field].extend(x for chunk in values for x in chunk)
            else:
                self.flat[field].extend(values)
            if lengths.setdefault(offsets, len(values)) != len(values):
                raise AlignmentError(f"fields sharing '{offsets}' differ in length")
        for offsets, n in lengths.items():
            self.offsets[offsets].append(self.offsets[offsets][-1] + n)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"line": _tensor(self.lines, torch.int64)}
        for offsets, values in self.offsets.items():
            out[offsets] = _tensor(values, torch.int64)
        for field, values in self.flat.items():
            out[field] = _tensor(values, torch.int32)
            if field == "chunks":
                out[field] = out[field].reshape(-1, 4)
        return out


def _tensor(values: array, dtype: torch.dtype) -> torch.Tensor:
    return (
        torch.frombuffer(values, dtype=dtype).clone()
        if len(values)
        else torch.zeros(0, dtype=dtype)
    )


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write atomically: a crash never leaves a half-written cache behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(tmp),
        metadata={META_KEY: json.dumps(meta)},
    )
    os.chmod(tmp, 0o644)  # safetensors creates the file owner-only
    os.replace(tmp, path)


def chunk_kind(chunk: Sequence[int]) -> str:
    """``"1:1"``, ``"1:n"``, ``"n:1"`` or ``"n:m"``: teacher tokens : student tokens of a chunk."""
    n_t, n_s = chunk[1] - chunk[0], chunk[3] - chunk[2]
    if n_t == 1:
        return "1:1" if n_s == 1 else "1:n"
    return "n:1" if n_s == 1 else "n:m"


def _spread(values: list[int]) -> dict:
    return {
        "mean": round(sum(values) / max(1, len(values)), 4),
        "min": min(values, default=0),
        "max": max(values, default=0),
    }


class Summary:
    """Running statistics of an aligned split (kept rows are added one by one).

    Chunks (Pipeline A): chunks per row, chunk kinds, ``content_coverage`` = bytes of all message contents covered by
    chunks / all content bytes (truncation counts as uncovered), ``response_coverage`` the same for
    the final assistant message. Positions (B): pairs per row, ``paired_fraction`` = pairs / student tokens
    inside assistant contents, id mismatches.
    """

    def __init__(self, alignment: str):
        self.chunks = alignment == "chunks"
        self.rows = 0
        self.per_row: dict[str, list[int]] = {
            "student_tokens": [],
            "teacher_tokens": [],
            "items": [],
        }
        self.totals: dict[str, int] = {}
        self.kinds = dict.fromkeys(("1:1", "1:n", "n:1", "n:m"), 0)

    def add(self, row: dict) -> None:
        self.rows += 1
        items = row["chunks"] if self.chunks else row["align_student"]
        self.per_row["student_tokens"].append(len(row["input_ids"]))
        self.per_row["teacher_tokens"].append(len(row["teacher_input_ids"]))
        self.per_row["items"].append(len(items))
        for key, value in row["stats"].items():
            self.totals[key] = self.totals.get(key, 0) + value
        for chunk in row.get("chunks", ()):
            self.kinds[chunk_kind(chunk)] += 1

    def result(self, dropped: int) -> dict:
        total, items = self.totals.get, self.per_row["items"]
        out = {
            "rows": self.rows,
            "dropped_rows": dropped,
            "student_tokens": _spread(self.per_row["student_tokens"]),
            "teacher_tokens": _spread(self.per_row["teacher_tokens"]),
        }
        if self.chunks:
            out |= {
                "chunks": sum(items),
                "chunks_per_row": _spread(items),
                "rows_without_chunks": items.count(0),
                "chunk_kinds": dict(self.kinds),
                "content_coverage": _ratio(total("chunk_bytes", 0), total("content_bytes", 0)),
                "response_coverage": _ratio(
                    total("response_chunk_bytes", 0), total("response_bytes", 0)
                ),
                "chunks_cut_by_teacher_cap": total("chunks_cut_by_teacher_cap", 0),
            }
        else:
            out |= {
                "pairs": sum(items),
                "pairs_per_row": _spread(items),
                "rows_without_pairs": items.count(0),
                "paired_fraction": _ratio(total("pairs", 0), total("content_tokens", 0)),
                "id_mismatch_pairs": total("id_mismatch", 0),
                "pairs_cut_by_truncation": total("pairs_cut_by_truncation", 0),
            }
        return out


def _ratio(part: int, whole: int) -> float:
    return round(part / max(1, whole), 6)


class AlignmentCache(Sequence):
    """A loaded alignment file: ``cache[i]`` is row ``i`` as the aligning function returned it
    (lists of ints; ``chunks`` as 4-tuples) plus ``line`` (its line in the distill split);
    ``pipeline`` is the pipeline's name (``cross``, ``shared``)."""

    def __init__(self, tensors: dict[str, torch.Tensor], meta: dict, path: Path):
        self.tensors, self.meta, self.path = tensors, meta, path
        self.pipeline: str = pipeline_with_letter(meta["pipeline"]).name
        self.stats: dict = meta.get("stats", {})

    def __len__(self) -> int:
        return int(self.tensors["line"].numel())

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} out of range for {len(self)} rows of {self.path}")
        index %= len(self)
        row: dict = {"line": int(self.tensors["line"][index])}
        for field, offsets in _row_fields(self.meta["pipeline"]):
            lo, hi = self.tensors[offsets][index : index + 2].tolist()
            values = self.tensors[field][lo:hi].tolist()
            row[field] = [tuple(c) for c in values] if field == "chunks" else values
        return row


def _row_fields(letter) -> tuple:
    """The stored fields of a cache whose header names pipeline ``letter`` (A or B)."""
    return ROW_FIELDS[pipeline_with_letter(letter).alignment]


def load_alignment_cache(path: str | Path) -> AlignmentCache:
    """Open a file written by :func:`build_alignment_cache`; a wrong or damaged file raises
    :class:`AlignmentError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"alignment cache not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = (fh.metadata() or {}).get(META_KEY)
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise AlignmentError(f"{path}: not a readable safetensors file ({err})") from err
    if header is None:
        raise AlignmentError(f"{path}: no '{META_KEY}' metadata (not an alignment cache)")
    meta = json.loads(header)
    try:
        fields = _row_fields(meta.get("pipeline"))
    except ValueError:
        fields = None
    if meta.get("format") != FORMAT or fields is None:
        raise AlignmentError(
            f"{path}: format {meta.get('format')!r} / pipeline {meta.get('pipeline')!r} "
            f"is not {FORMAT!r} with pipeline A or B"
        )
    needed = {"line"} | {name for pair in fields for name in pair}
    missing = sorted(needed - set(tensors))
    if missing:
        raise AlignmentError(f"{path}: missing tensor(s) {', '.join(missing)}")
    return AlignmentCache(tensors, meta, path)
