"""A fast sanity check before the long evaluation: can the checkpoint produce parseable output?

``sanity_check(model_dir, world_dir, n=16)`` evaluates ``n`` items of each tiny-world task through
the same lm-eval path as :func:`tide.eval.run.evaluate` and measures, per task, the share of
replies the task's filter can parse (a letter, a number, a boxed answer, a ``So the answer is``
clause, a program that compiles). It raises :class:`SanityCheckError`, naming the checkpoint and
showing example replies, when the overall parse rate is below ``min_parse_rate`` (or, with
``require_each_task``, when some task parses nothing) -- a broken checkpoint, tokenizer, mask id
or chat template shows up here in seconds instead of after hours.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from tide.eval.run import evaluate, model_name_for, samples_of, stage_sampler_args
from tide.eval.tasks import PRIMARY_METRICS, TINY_TASKS
from tide.eval.tasks.utils import INVALID

EXAMPLES_SHOWN = 2


class SanityCheckError(RuntimeError):
    """The checkpoint cannot produce parseable output; the message names it."""


def is_parseable(task: str, sample: dict[str, Any]) -> bool:
    """Whether the task's filter got an answer out of the reply of one logged sample."""
    filtered = sample.get("filtered_resps")
    value = filtered[0] if isinstance(filtered, list) and filtered else filtered
    if not isinstance(value, str) or not value.strip() or value == INVALID:
        return False
    if task in ("tiny_humaneval", "tiny_mbpp"):
        if task == "tiny_humaneval" and not _reply(sample).split("```")[0].strip():
            return False  # the stub alone is not an answer
        try:
            compile(value, f"<{task} sample>", "exec")
        except (SyntaxError, ValueError):
            return False
    return True


def _reply(sample: dict[str, Any]) -> str:
    resps = sample.get("resps") or [[""]]
    first = resps[0]
    return first[0] if isinstance(first, list) and first else str(first)


def parse_report(samples_by_task: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-task parse rates and example replies from logged samples (primary filter only)."""
    report: dict[str, Any] = {"tasks": {}}
    parsed_all = total_all = 0
    for task, samples in samples_by_task.items():
        primary_filter = PRIMARY_METRICS[task][1]
        rows = [s for s in samples if s.get("filter", primary_filter) == primary_filter]
        parsed = sum(is_parseable(task, s) for s in rows)
        report["tasks"][task] = {
            "n": len(rows),
            "parsed": parsed,
            "parse_rate": parsed / len(rows) if rows else 0.0,
            "examples": [_reply(s) for s in rows[:EXAMPLES_SHOWN]],
        }
        parsed_all += parsed
        total_all += len(rows)
    report["parse_rate"] = parsed_all / total_all if total_all else 0.0
    return report


def sanity_check(
    model_dir: str | Path,
    world_dir: str | Path,
    n: int = 16,
    *,
    model_kind: str | None = None,
    sampler_args: dict[str, Any] | None = None,
    batch_size: int = 8,
    min_parse_rate: float = 0.5,
    require_each_task: bool = False,
    out_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run ``n`` items of each tiny-world task; return the parse report plus the summary
    (``{"tasks": {task: {"n", "parsed", "parse_rate", "examples"}}, "parse_rate", "summary"}``).

    Raises ``SanityCheckError`` naming ``model_dir`` if the overall parse rate is below
    ``min_parse_rate`` or (``require_each_task``) some task parses nothing.
    """
    with tempfile.TemporaryDirectory(prefix="tide-sanity-") as tmp:
        target = Path(out_dir) if out_dir is not None else Path(tmp)
        summary = evaluate(
            model_dir, list(TINY_TASKS), target, world_dir=world_dir, model_kind=model_kind,
            sampler_args=sampler_args, limit=n, batch_size=batch_size,
        )  # fmt: skip
        report = parse_report({task: list(samples_of(target, task)) for task in TINY_TASKS})
    report["summary"] = summary
    failing = [t for t, r in report["tasks"].items() if r["parsed"] == 0]
    if report["parse_rate"] < min_parse_rate or (require_each_task and failing):
        lines = [
            f"  {task}: {r['parsed']}/{r['n']} parseable, e.g. {r['examples'][:1]!r}"
            for task, r in report["tasks"].items()
        ]
        raise SanityCheckError(
            f"checkpoint {model_dir} does not produce parseable answers "
            f"(overall {report['parse_rate']:.0%} < {min_parse_rate:.0%}"
            + (f"; nothing parsed in {', '.join(failing)}" if failing else "")
            + "):\n"
            + "\n".join(lines)
        )
    return report


def run_sanity(config: dict[str, Any], model_dir: str | Path, world_dir: str | Path,
               out_dir: str | Path, *, model_kind: str | None = None) -> dict[str, Any]:
    """The sanity stage: a few items per task before the long evaluation; raises
    ``SanityCheckError`` naming the checkpoint when it cannot produce parseable answers."""
    section = config["eval"]
    model_name = model_name_for(model_dir, model_kind)
    return sanity_check(model_dir, world_dir, n=section["sanity_n"], model_kind=model_name,
                        sampler_args=stage_sampler_args(config, model_name),
                        batch_size=section["batch_size"], out_dir=out_dir,
                        min_parse_rate=section["sanity_min_parse_rate"])  # fmt: skip
