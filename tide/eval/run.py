"""Evaluate a checkpoint through lm-eval and write one results JSON (+ samples JSONL) per task.

``evaluate(model_dir, tasks, out_dir, world_dir=...)`` picks our lm-eval class from the
checkpoint's ``model_type`` (or ``model_kind``), loads the local task YAMLs of
``tide/eval/tasks`` and calls ``lm_eval.simple_evaluate`` offline with the chat template applied,
few-shot examples in one user turn (as the paper's harness), unsafe code allowed (our sandbox
runs it) and samples logged. Output in ``out_dir``:

- ``<task>.json``: the harness's results / configs / versions / n-shot / n-samples for the task
  (and its subtasks), the harness config block (model args, our sampler settings, seeds, limit),
  the primary metric, its score on every item (``items``: what paired statistics across models
  pair on), and a provenance record (git sha, package versions, seed);
- ``<task>.samples.jsonl``: every logged sample (prompt, raw and filtered replies, target, score);
- ``summary.json``: the primary metric per task and their mean (the paper's "Avg").

``PAPER_TASKS`` maps the 8 families to the paper's lm-eval tasks and settings (shots,
max_new_tokens = steps, block 32); ``paper_run_settings`` gives the arguments for one of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tide.eval.tasks import PAPER_LOCAL_TASKS, PRIMARY_METRICS, TASKS_DIR, TINY_GROUP, TINY_TASKS

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
KIND_TO_MODEL = {
    "a2d-qwen3": "tide_bd3lm", "student": "tide_bd3lm", "bd3lm": "tide_bd3lm",
    "llada2_moe": "tide_llada2", "llada2": "tide_llada2", "teacher_a": "tide_llada2",
    "wedlm": "tide_wedlm", "teacher_b": "tide_wedlm",
    "qwen3": "tide_ar", "ar": "tide_ar",
}  # fmt: skip
# harness keys stored per task (the rest of the results dict is per-task and split up)
PER_TASK_KEYS = ("results", "configs", "versions", "n-shot", "n-samples", "higher_is_better")


@dataclass(frozen=True)
class PaperTask:
    """One paper benchmark as run by TIDE (bd3lm.md §4): lm-eval task, shots, generation length
    (= steps, block 32), reported (metric, filter). ``upstream``: the task is stock lm-eval
    0.4.13's; otherwise it is ours in ``tide/eval/tasks/paper`` (the fork-only
    ``mmlu_generative_dream`` and ``hellaswag_gen``, and the code tasks scored in our sandbox).
    All but ``paper_humaneval`` read hub datasets (from the cache: runs are offline)."""

    task: str
    num_fewshot: int
    max_new_tokens: int
    metric: tuple[str, str]
    upstream: bool = True


PAPER_TASKS: dict[str, PaperTask] = {
    "gsm8k": PaperTask("gsm8k_cot", 0, 256, ("exact_match", "flexible-extract")),
    "math": PaperTask("minerva_math", 0, 256, ("exact_match", "none")),
    "bbh": PaperTask("bbh", 3, 256, ("exact_match", "get-answer")),
    "mmlu": PaperTask("mmlu_generative_dream", 0, 3, ("exact_match", "get-answer"), False),
    "mmlu_pro": PaperTask("mmlu_pro", 0, 256, ("exact_match", "custom-extract")),
    "hellaswag": PaperTask("hellaswag_gen", 0, 3, ("exact_match", "get-answer"), False),
    "humaneval": PaperTask("paper_humaneval", 0, 256, ("pass@1", "create_test"), False),
    "mbpp": PaperTask("paper_mbpp", 0, 256, ("pass@1", "extract_code"), False),
}
PAPER_BLOCK_SIZE = 32
PAPER_TASK_FAMILY = {spec.task: family for family, spec in PAPER_TASKS.items()}


class EvaluationError(RuntimeError):
    """An evaluation that cannot run or produced no results; the message names model and task."""


def paper_run_settings(family: str) -> dict[str, Any]:
    """Arguments of :func:`evaluate` for one paper benchmark: task, shots, sampler settings."""
    if family not in PAPER_TASKS:
        raise KeyError(f"unknown paper benchmark {family!r} (known: {', '.join(PAPER_TASKS)})")
    task = PAPER_TASKS[family].task
    settings = paper_task_settings(task)
    length = settings["gen_length"]
    return {
        "tasks": [task],
        "num_fewshot": settings["num_fewshot"],
        "sampler_args": {"gen_length": length, "steps": length, "block_size": PAPER_BLOCK_SIZE},
    }


# --------------------------------------------------------------------------------------------------
# Model and task resolution


def model_name_for(model_dir: str | Path, model_kind: str | None = None) -> str:
    """The lm-eval model name to use: from ``model_kind`` (a kind alias or a registered lm-eval
    model name) or from the checkpoint's ``config.json`` ``model_type``."""
    import tide.eval.models  # noqa: F401  (registers tide_bd3lm, tide_llada2, tide_wedlm, tide_ar)

    if model_kind is not None:
        if model_kind in KIND_TO_MODEL:
            return KIND_TO_MODEL[model_kind]
        from lm_eval.api.registry import get_model

        try:
            get_model(model_kind)
        except ValueError:
            raise EvaluationError(
                f"unknown model kind {model_kind!r} for {model_dir}; use one of "
                f"{sorted(KIND_TO_MODEL)} or a registered lm-eval model name"
            ) from None
        return model_kind
    from tide.models.loading import read_model_type

    try:
        model_type = read_model_type(Path(model_dir))
    except ValueError as err:
        raise EvaluationError(f"cannot evaluate {model_dir}: {err}") from err
    if model_type not in KIND_TO_MODEL:
        raise EvaluationError(
            f"{model_dir}: model_type {model_type!r} has no evaluation class "
            f"(known: a2d-qwen3, llada2_moe, wedlm, qwen3)"
        )
    return KIND_TO_MODEL[model_type]


def paper_task_settings(task: str) -> dict[str, int]:
    """``{num_fewshot, gen_length}`` of one of the paper's tasks (``{}`` for another task)."""
    if task not in PAPER_TASK_FAMILY:
        return {}
    spec = PAPER_TASKS[PAPER_TASK_FAMILY[task]]
    return {"num_fewshot": spec.num_fewshot, "gen_length": spec.max_new_tokens}


def expand_tasks(tasks: str | Sequence[str]) -> list[str]:
    """Task names with the ``tiny_world`` group replaced by its eight tasks; duplicates dropped."""
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    out: list[str] = []
    for name in names:
        for task in TINY_TASKS if name == TINY_GROUP else (name,):
            if task not in out:
                out.append(task)
    if not out:
        raise EvaluationError("no tasks given")
    return out


def primary_metric(task: str) -> tuple[str, str] | None:
    """(metric, filter) reported for ``task`` (tiny tasks, paper tasks), or None if unknown."""
    if task in PRIMARY_METRICS:
        return PRIMARY_METRICS[task]
    for spec in PAPER_TASKS.values():
        if spec.task == task:
            return spec.metric
    return None


@contextmanager
def offline_environment():
    """HF hub / datasets offline for the duration (restores the previous values)."""
    saved = {key: os.environ.get(key) for key in OFFLINE_ENV}
    os.environ.update(OFFLINE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------------------------------
# Running


def run_harness(
    model_name: str,
    model_args: dict[str, Any],
    tasks: list[str],
    *,
    world_dir: str | Path | None,
    limit: int | None,
    seed: int,
    batch_size: int,
    num_fewshot: int | None = None,
) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` on our task YAMLs (plus lm-eval's own tasks when a name is not
    ours), offline; returns the harness's results dict."""
    with offline_environment():
        import lm_eval
        from lm_eval.tasks import TaskManager

        ours = set(TINY_TASKS) | {TINY_GROUP} | set(PAPER_LOCAL_TASKS)
        metadata = {"world_dir": str(Path(world_dir).resolve())} if world_dir is not None else {}
        manager = TaskManager(
            include_path=str(TASKS_DIR),
            include_defaults=not set(tasks) <= ours,
            metadata=metadata,
        )
        return lm_eval.simple_evaluate(
            model=model_name,
            model_args=model_args,
            tasks=tasks,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            limit=limit,
            task_manager=manager,
            apply_chat_template=True,
            fewshot_as_multiturn=False,
            confirm_run_unsafe_code=True,
            log_samples=True,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )


def leaf_tasks(task: str, group_subtasks: dict[str, list[str]]) -> list[str]:
    """``task`` itself, or every task under it if it is a group."""
    if task not in group_subtasks:
        return [task]
    return [leaf for sub in group_subtasks[task] for leaf in leaf_tasks(sub, group_subtasks)]


def _json_default(value: Any) -> Any:
    from lm_eval.utils import handle_non_serializable

    return handle_non_serializable(value)


def _dump(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, indent=2, sort_keys=True, ensure_ascii=False)


def task_record(task: str, results: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """The per-task results JSON: the harness's blocks restricted to the task (+ subtasks)."""
    names = [task, *leaf_tasks(task, results.get("group_subtasks", {}))]
    record: dict[str, Any] = {"task": task}
    for key in PER_TASK_KEYS:
        block = results.get(key) or {}
        record[key] = {name: block[name] for name in names if name in block}
    harness = {
        k: v for k, v in results.items() if k not in PER_TASK_KEYS + ("samples", "group_subtasks")
    }
    record["harness"] = harness
    record["tide"] = provenance
    record["primary"] = primary_value(task, results.get("results", {}))
    record["items"] = item_scores(task, results)
    return record


def primary_value(task: str, results: dict[str, Any]) -> dict[str, Any] | None:
    """{"metric", "filter", "value", "stderr"} of the task's reported metric, if known."""
    metric = primary_metric(task)
    if metric is None or task not in results:
        return None
    name, filt = metric
    value = results[task].get(f"{name},{filt}")
    stderr = results[task].get(f"{name}_stderr,{filt}")
    return {
        "metric": name,
        "filter": filt,
        "value": None if value is None else float(value),
        "stderr": stderr if isinstance(stderr, str) or stderr is None else float(stderr),
    }


def item_scores(task: str, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The primary metric of every logged item of ``task`` (its leaf tasks for a group), as
    ``[{"task", "doc_id", "score"}]`` sorted by (task, doc_id): the same held-out items get the
    same keys for every model. Empty when the task has no known primary metric."""
    metric = primary_metric(task)
    if metric is None:
        return []
    name, filt = metric
    samples = results.get("samples") or {}
    items = [
        {"task": leaf, "doc_id": int(sample["doc_id"]), "score": float(sample[name])}
        for leaf in leaf_tasks(task, results.get("group_subtasks", {}))
        for sample in samples.get(leaf, [])
        if sample.get("filter") == filt and name in sample
    ]
    return sorted(items, key=lambda item: (item["task"], item["doc_id"]))


def write_samples(path: Path, task: str, results: dict[str, Any]) -> int:
    """Write the task's (and its subtasks') logged samples as JSONL; returns the row count."""
    samples = results.get("samples") or {}
    rows = 0
    with path.open("w", encoding="utf-8") as handle:
        for name in leaf_tasks(task, results.get("group_subtasks", {})):
            for sample in samples.get(name, []):
                row = {"task": name, **sample}
                handle.write(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n")
                rows += 1
    return rows


def evaluate(
    model_dir: str | Path,
    tasks: str | Sequence[str],
    out_dir: str | Path,
    *,
    world_dir: str | Path | None,
    model_kind: str | None = None,
    sampler_args: dict[str, Any] | None = None,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 1,
    num_fewshot: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_dir`` on ``tasks`` (``"tiny_world"`` = the eight tiny tasks) and write
    ``<task>.json``, ``<task>.samples.jsonl`` and ``summary.json`` under ``out_dir``.

    sampler_args: model args of the chosen class (e.g. ``gen_length``, ``steps``, ``block_size``
    for ``tide_bd3lm``; ``threshold`` for ``tide_llada2``; ``window`` for ``tide_wedlm``).
    limit: items per task (None = all). Returns the summary dict
    ``{"model_dir", "model", "tasks": {task: primary}, "average", "files"}``.
    """
    from tide.provenance import record as provenance_record

    task_names = expand_tasks(tasks)
    with offline_environment():  # before transformers / datasets read the variables on import
        model_name = model_name_for(model_dir, model_kind)
    model_args = {"pretrained": str(model_dir), "seed": seed, **(sampler_args or {})}
    if device is not None:
        model_args["device"] = device
    results = run_harness(
        model_name, model_args, task_names, world_dir=world_dir, limit=limit, seed=seed,
        batch_size=batch_size, num_fewshot=num_fewshot,
    )  # fmt: skip
    if not results or not results.get("results"):
        raise EvaluationError(f"lm-eval returned no results for {model_dir} on {task_names}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "model_dir": str(model_dir),
        "model": model_name,
        "model_args": model_args,
        "tasks": task_names,
        "world_dir": None if world_dir is None else str(Path(world_dir).resolve()),
        "limit": limit,
        "batch_size": batch_size,
        "num_fewshot": num_fewshot,
        "apply_chat_template": True,
        "fewshot_as_multiturn": False,
        "offline": True,
    }
    provenance = provenance_record(settings, seed)
    summary: dict[str, Any] = {"model_dir": str(model_dir), "model": model_name, "tasks": {}}
    files = []
    for task in task_names:
        if task not in results["results"]:
            raise EvaluationError(f"lm-eval produced no result for task {task} on {model_dir}")
        record = task_record(task, results, provenance)
        (out / f"{task}.json").write_text(_dump(record) + "\n", encoding="utf-8")
        write_samples(out / f"{task}.samples.jsonl", task, results)
        summary["tasks"][task] = record["primary"]
        files += [f"{task}.json", f"{task}.samples.jsonl"]
    values = [p["value"] for p in summary["tasks"].values() if p and p["value"] is not None]
    summary["average"] = sum(values) / len(values) if len(values) == len(task_names) else None
    summary["files"] = files
    summary["tide"] = provenance
    (out / "summary.json").write_text(_dump(summary) + "\n", encoding="utf-8")
    return summary


def samples_of(out_dir: str | Path, task: str) -> Iterable[dict[str, Any]]:
    """The logged samples of ``task`` written by :func:`evaluate`."""
    with (Path(out_dir) / f"{task}.samples.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


# --------------------------------------------------------------------------------------------------
# Workflow stage (``python -m tide eval``)

STAGE_SAMPLER_KEYS = {  # model args a stage passes per class: the block size the model was trained at
    "tide_bd3lm": ("block_size",),
    "tide_llada2": ("block_size",),
    "tide_wedlm": (),
    "tide_ar": (),
}


def stage_sampler_args(config: dict[str, Any], model_name: str) -> dict[str, Any]:
    """Sampler args of one lm-eval model class: the block size the students were trained at (block
    samplers only) plus ``eval.sampler.<model name>`` of the project config (validated: its
    ``eval.sampler`` and ``attention`` filled; a model name outside eval.sampler gets none)."""
    chosen = config["eval"]["sampler"].get(model_name, {})
    keys = STAGE_SAMPLER_KEYS.get(model_name, ())
    if chosen.get("decoder") == "block":  # teacher-B queried through the BD3LM block sampler
        keys = ("block_size",)
    sampler = {"block_size": config["students"]["block_size"]}
    attention = config["attention"]  # the config's kernels (tide.models.loading)
    extra = {"attention": attention} if attention != "sdpa" else {}
    return {k: v for k, v in sampler.items() if k in keys} | extra | chosen


def run_stage(
    config: dict[str, Any],
    model_dir: str | Path,
    world_dir: str | Path,
    out_dir: str | Path,
    *,
    tasks: str | Sequence[str] = TINY_GROUP,
    model_kind: str | None = None,
) -> dict[str, Any]:
    """The ``eval`` stage: the evaluation of ``tasks`` with the settings of the ``eval`` config
    section (limit, batch size, sampler args per model class); the seed is the config's ``seed``."""
    section = config["eval"]
    model_name = model_name_for(model_dir, model_kind)
    sampler, num_fewshot = stage_sampler_args(config, model_name), None
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    given = section["task_settings"]
    if any(name in PAPER_TASK_FAMILY or name in given for name in names):  # e.g. the paper's tasks
        if len(names) != 1:
            raise EvaluationError(f"tasks with settings run one per call (they differ): {names}")
        settings = paper_task_settings(names[0]) | given.get(names[0], {})
        num_fewshot = settings.get("num_fewshot")
        if "gen_length" in settings:
            sampler = {"gen_length": settings["gen_length"]} | sampler
    return evaluate(model_dir, tasks, out_dir, world_dir=world_dir, model_kind=model_name,
                    sampler_args=sampler, limit=section["limit"], seed=config["seed"],
                    batch_size=section["batch_size"], num_fewshot=num_fewshot)  # fmt: skip
