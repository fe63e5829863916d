"""The efficiency table: peak memory and time to generate tokens, the BD3LM student vs each teacher
(``results/profile/<model>.json`` and ``results/profile/shapes/<name>.json``, written by
:mod:`tide.profiling`), with the ratios teacher/student beside the paper's (1.4 vs 31.3 GB, 6.25 vs
32.55 s for 256 tokens on one H100 in bfloat16: 22x and 5.2x; ``published/efficiency.csv``), and
the verdicts of the paper's efficiency claims.

Which measurement can test the claims, which concern LLaDA2.0-mini and the 0.6B student on an H100:

- the prepared checkpoints profiled on CUDA (the paper scale): the claims' own setting; the
  verdict compares magnitudes: ``holds`` when our ratio reaches :data:`MAGNITUDE_SHARE` of the
  paper's, ``does not hold`` below it;
- the real shapes with random weights at full depth on CUDA: memory is the weights' and the
  sampler's, as with the real weights (same verdict); time is an upper bound of the ratio (random
  weights never reach the teacher's confidence threshold, so it runs every step of its quota):
  ``does not hold`` when even the bound falls short, else ``not resolvable here``;
- anything else (the tiny models; real shapes on a CPU): ``not resolvable here``, with the measured
  ratio shown: a 0.4M-parameter student against a 2M teacher says nothing about 0.6B vs 16B.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tide.tables import published
from tide.tables.scores import TEACHER_MODELS, TablesError
from tide.tables.stats import FAILS, HOLDS, UNRESOLVED

STUDENT_MODEL = "students/bd3lm"  # the distilled students share its architecture and cost
ROLE_LABELS = {"student": "Student (BD3LM)", "teacher_a": "Teacher A (LLaDA2-MoE)",
               "teacher_b": "Teacher B (WeDLM)"}
PAPER_TEACHER = "teacher_a"  # the paper profiles LLaDA2.0-mini only
MAGNITUDE_SHARE = 0.8  # a magnitude claim holds when our ratio reaches 80% of the paper's
GIB = 2**30
MEMORY_CLAIM = "peak-memory reduction vs LLaDA2.0-mini teacher"
SPEED_CLAIMS = {"inference speedup vs LLaDA2.0-mini teacher (256 tokens on H100)": "time_ratio",
                "inference speedup (teaser figure)": "tokens_per_s_ratio"}
CHECKPOINTS, SHAPES, PAPER = "checkpoints", "real shapes, random weights", "paper"


def profile_models(config: dict[str, Any]) -> list[str]:
    """The profiled models, as paths under the profile directory without ``.json``: the BD3LM
    student, each pipeline's teacher, then ``shapes/<name>`` per random-weights shape."""
    models = [STUDENT_MODEL]
    models += [TEACHER_MODELS[p] for p in config["distill"]["pipelines"] if p in TEACHER_MODELS]
    models += [f"shapes/{s['name']}" for s in config["profile"]["random_weights_shapes"]]
    return models


def profile_files(config: dict[str, Any]) -> list[str]:
    """The result files of :func:`profile_models`, relative to the profile directory."""
    return [f"{m}.json" for m in profile_models(config)]


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TablesError(f"{path}: profile result missing (run its profile job first)")
    try:
        record = json.loads(path.read_text())
        for key in ("role", "best_time_s", "peak_memory_bytes", "device", "dtype"):
            record[key]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise TablesError(f"{path}: not a profile result ({err!r})") from None
    return record


def _row(group: str, model: str, r: dict[str, Any]) -> dict[str, Any]:
    sampler = dict(r.get("sampler") or {})
    return {
        "group": group, "model": model, "role": r["role"], "random_weights": r["random_weights"],
        "parameters": r.get("parameters"), "num_hidden_layers": r.get("num_hidden_layers"),
        "full_depth": r.get("full_depth"), "device": r.get("device_name") or r["device"],
        "dtype": r["dtype"], "attention": r.get("attention"),
        "sampler": sampler.pop("function", ""), "sampler_settings": json.dumps(sampler, sort_keys=True),
        "gen_length": r.get("generated_tokens", r.get("gen_length")), "batch_size": r.get("batch_size"),
        "prompt_tokens": r.get("prompt_tokens"), "repeats": r.get("repeats"),
        "peak_memory_gib": r["peak_memory_bytes"] / GIB, "best_time_s": r["best_time_s"],
        "tokens_per_s": r.get("tokens_per_s"),
        "deterministic": r.get("deterministic"), "torch_threads": r.get("torch_threads"),
    }  # fmt: skip


def _comparable(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[k] == b[k] for k in ("device", "dtype", "gen_length", "batch_size"))


def efficiency_table(profile_dir: str | Path | None, config: dict[str, Any]) -> pd.DataFrame:
    """One row per profiled model (checkpoints, then real shapes with random weights), each teacher
    with its ratios to the student of its group, then the paper's rows. Ratios: teacher/student
    peak memory, teacher/student time, student/teacher tokens per second (only between runs of the
    same device, dtype, generated tokens and batch)."""
    rows: list[dict[str, Any]] = []
    if profile_dir is not None:
        for model in profile_models(config):
            group = SHAPES if model.startswith("shapes/") else CHECKPOINTS
            rows.append(_row(group, model, _read(Path(profile_dir) / f"{model}.json")))
    for group in (CHECKPOINTS, SHAPES):
        members = [r for r in rows if r["group"] == group]
        students = [r for r in members if r["role"] == "student"]
        for r in members:
            r["memory_ratio"] = r["time_ratio"] = r["tokens_per_s_ratio"] = None
            if r["role"] == "student" or not students or not _comparable(r, students[0]):
                continue
            s = students[0]
            r["memory_ratio"] = r["peak_memory_gib"] / s["peak_memory_gib"]
            r["time_ratio"] = r["best_time_s"] / s["best_time_s"]
            if r["tokens_per_s"] and s["tokens_per_s"]:
                r["tokens_per_s_ratio"] = s["tokens_per_s"] / r["tokens_per_s"]
    paper = {p["role"]: p for p in published.efficiency()}
    for role in ("student", PAPER_TEACHER):
        p = paper[role]
        ratios = paper["ratio"] if role == PAPER_TEACHER else {}
        rows.append({"group": PAPER, "model": p["model"], "role": role, "random_weights": False,
                     "device": p["hardware"], "dtype": p["dtype"], "gen_length": 256,
                     "repeats": 5, "peak_memory_gib": p["peak_memory_gb"],
                     "best_time_s": p["time_256_tokens_s"], "tokens_per_s": p["tokens_per_s"],
                     **{k: ratios.get(k) for k in ("memory_ratio", "time_ratio",
                                                   "tokens_per_s_ratio")}})
    return pd.DataFrame(rows)


# LLaDA2.0-mini's parameters (teachers.md §3, buffers excluded): a profile of this size is of the
# paper's teacher (its checkpoint, or its shape at full depth), not of a tiny stand-in
LLADA2_MINI_PARAMETERS = 16_255_638_528


def _source(frame: pd.DataFrame) -> tuple[str, pd.Series | None]:
    """The teacher-A row that tests the claims best: (kind, row); kind ``checkpoint`` (the real
    teacher's weights on CUDA), ``shape`` (its shape at full depth, random weights, CUDA),
    ``weak`` (anything else measured beside the student) or ``none``."""
    teachers = frame[(frame["group"] != PAPER) & (frame["role"] == PAPER_TEACHER)
                     & frame["memory_ratio"].notna()]
    for _, r in teachers.iterrows():
        real = (r["parameters"] or 0) >= LLADA2_MINI_PARAMETERS
        if real and str(r["device"]).lower() != "cpu":
            return ("shape" if r["random_weights"] else "checkpoint"), r
    return ("weak", teachers.iloc[0]) if len(teachers) else ("none", None)


def _magnitude(ours: float, paper: float) -> str:

    return HOLDS if ours >= MAGNITUDE_SHARE * paper else FAILS


def efficiency_claims(frame: pd.DataFrame) -> dict[str, tuple[str, float | None, str]]:
    """Claim text -> (our counterpart, our ratio, verdict) for the paper's efficiency claims."""

    kind, r = _source(frame)
    paper = {p["role"]: p for p in published.efficiency()}["ratio"]
    paper_ratio = {"memory_ratio": paper["memory_ratio"], "time_ratio": paper["time_ratio"],
                   "tokens_per_s_ratio": paper["tokens_per_s_ratio"]}
    out: dict[str, tuple[str, float | None, str]] = {}
    for claim, column in [(MEMORY_CLAIM, "memory_ratio"), *SPEED_CLAIMS.items()]:
        if r is None:
            out[claim] = ("no profile of teacher A beside the student", None, UNRESOLVED)
            continue
        value = r[column]
        what = {"memory_ratio": "peak memory teacher A / student",
                "time_ratio": f"time for {r['gen_length']} tokens teacher A / student",
                "tokens_per_s_ratio": "tokens/s student / teacher A"}[column]
        where = f"{r['device']}, {r['dtype']}, {r['gen_length']} tokens"
        if value is None or pd.isna(value):
            out[claim] = (f"{what}: not comparable ({where})", None, UNRESOLVED)
        elif kind == "checkpoint":
            out[claim] = (f"{what}, the prepared checkpoints ({where})", value,
                          _magnitude(value, paper_ratio[column]))
        elif kind == "shape" and column == "memory_ratio":
            out[claim] = (f"{what}, real shapes with random weights ({where})", value,
                          _magnitude(value, paper_ratio[column]))
        elif kind == "shape":
            verdict = FAILS if value < MAGNITUDE_SHARE * paper_ratio[column] else UNRESOLVED
            text = (f"{what}, real shapes with random weights ({where}): an upper bound "
                    "(random weights never reach teacher A's confidence threshold)")
            out[claim] = (text, value, verdict)
        else:
            real = (r["parameters"] or 0) >= LLADA2_MINI_PARAMETERS
            scale = "the real teacher's size on a CPU" if real else "tiny models"
            text = (f"{what}, {scale} ({where}): measured, but it does not test the claim, "
                    "which concerns the real models on an H100")
            out[claim] = (text, value, UNRESOLVED)
    return out
