"""The paper's tables from a :class:`~tide.tables.scores.Study`: main results, strategy swap,
ablations and headline claims, as pandas frames (long format; :mod:`tide.tables.render` lays
them out as the paper does). Every interval is a paired bootstrap (:mod:`tide.tables.stats`);
every verdict is read off an interval, never set by hand."""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from tide.distill.objectives import NATIVE
from tide.tables import published
from tide.tables.efficiency import efficiency_claims
from tide.tables.published import AVG, AVG_EXCL, CHANCE, SWAPPED
from tide.tables.scores import AR, BD3LM, TEACHER_MODELS, Study, System, TablesError
from tide.tables.stats import (
    FAILS,
    HOLDS,
    UNRESOLVED,
    Delta,
    near_chance,
    paired_delta,
    seed_mean_std,
)


def study_models(config: dict[str, Any]) -> tuple[dict[System, list[str]], dict[str, list[str]]]:
    """The systems of the study (model directories per system, in the paper's column order,
    then our controls and the teachers) and the ablations, from the config's distill section."""
    distill = config["distill"]
    systems: dict[System, list[str]] = {AR: ["students/ar"], BD3LM: ["students/bd3lm"]}
    found = [
        System(pipeline, variant)
        for pipeline, section in distill["pipelines"].items()
        for variant in section["variants"]
    ]
    order = list(published.PAPER_COLUMNS)
    found.sort(key=lambda s: (order.index(s) if s in order else len(order), s.variant, s.pipeline))
    for system in found:
        systems[system] = [
            f"distill/{system.pipeline}/{system.variant}/seed{seed}" for seed in distill["seeds"]
        ]
    for pipeline in distill["pipelines"]:
        systems[System(pipeline, "teacher")] = [TEACHER_MODELS[pipeline]]
    ablations: dict[str, list[str]] = {}
    section = distill["ablations"]
    if section["activate"]:
        for name in section["select"] or list(section["runs"]):
            ablations[name] = [f"ablations/{name}/seed{seed}" for seed in section["seeds"]]
    return systems, ablations


class Comparer:
    """Paired deltas with a reproducible bootstrap stream per comparison, and the benchmark sets
    they are taken over (``avg_excluding``: the families the second average leaves out)."""

    def __init__(self, n_boot: int, level: float, seed: int, avg_excluding: list[str]):
        self.n_boot, self.level, self.seed = n_boot, level, seed
        self.avg_excluding = list(avg_excluding)

    def delta(self, name: str, a: dict[str, np.ndarray], b: dict[str, np.ndarray],
              benchmarks: list[str]) -> Delta:
        stream = self.seed + zlib.crc32(f"{name}|{','.join(benchmarks)}".encode())
        return paired_delta([a[k] for k in benchmarks], [b[k] for k in benchmarks],
                            n_boot=self.n_boot, level=self.level, seed=stream)

    def bench_sets(self, study: Study) -> list[tuple[str, list[str]]]:
        """Each benchmark alone, the average over all, and the average without
        ``avg_excluding`` (when that leaves some out and some in)."""
        sets = [(b, [b]) for b in study.benchmarks] + [(AVG, list(study.benchmarks))]
        kept = [b for b in study.benchmarks if b not in self.avg_excluding]
        if 0 < len(kept) < len(study.benchmarks):
            sets.append((AVG_EXCL, kept))
        return sets


def _ce_only(study: Study, system: System) -> System | None:
    control = System(system.pipeline, "ce_only")
    paired = system.distilled and system != control
    return control if paired and control in study.scores else None


def _seed_rows(scores: dict[str, np.ndarray], seeds: list, wanted: list,
               who: str) -> dict[str, np.ndarray]:
    """The rows of ``scores`` (in ``seeds`` order) for the ``wanted`` seeds, in that order: the
    runs a comparison pairs with, trained with the same seeds."""
    missing = [s for s in wanted if s not in seeds]
    if missing:
        raise TablesError(f"{who} has no seed {missing}")
    if wanted == seeds:
        return scores
    rows = [seeds.index(s) for s in wanted]
    return {k: v[rows] for k, v in scores.items()}


def _paired_rows(study: Study, system: System, other: System) -> dict[str, np.ndarray]:
    """``other``'s scores restricted to ``system``'s seeds (both trained with the same seeds)."""
    return _seed_rows(study.scores[other], study.seeds[other], study.seeds[system], other.key)


def _put(row: dict[str, Any], prefix: str, delta: Delta | None) -> None:
    row[prefix] = None if delta is None else delta.value
    row[f"{prefix}_ci_low"] = None if delta is None else delta.ci_low
    row[f"{prefix}_ci_high"] = None if delta is None else delta.ci_high


def main_results(study: Study, cmp: Comparer) -> pd.DataFrame:
    """One row per (system, benchmark or avg): mean, across-seed std, paper, deltas with CIs."""
    rows = []
    for system, scores in study.scores.items():
        control = _ce_only(study, system)
        for bench, benches in cmp.bench_sets(study):
            mean, std = seed_mean_std([scores[b] for b in benches])
            n_items = sum(scores[b].shape[1] for b in benches)
            row: dict[str, Any] = {
                "pipeline": system.pipeline, "variant": system.variant, "benchmark": bench,
                "mean": mean, "std": None if math.isnan(std) else std,
                "n_seeds": scores[benches[0]].shape[0], "n_items": n_items,
                "paper": _paper(system, bench, benches),
            }  # fmt: skip
            _put(row, "delta_vs_bd3lm",
                 cmp.delta(f"{system.key}-bd3lm", scores, study.scores[BD3LM], benches))
            _put(row, "delta_vs_ce_only", None if control is None else cmp.delta(
                f"{system.key}-ce_only", scores, _paired_rows(study, system, control), benches))
            single = len(benches) == 1
            chance = CHANCE.get(bench, 0.0)
            row["chance"] = 100 * chance if single else None
            row["near_chance"] = single and bool(near_chance(mean / 100, chance, n_items))
            rows.append(row)
    return pd.DataFrame(rows)


def _paper(system: System, bench: str, benches: list[str]) -> float | None:
    """The published number; for ``avg_excl`` the mean of the paper's numbers it averages."""
    if bench != AVG_EXCL:
        return published.paper_score(system, bench)
    values = [published.paper_score(system, b) for b in benches]
    return None if None in values else round(sum(values) / len(values), 2)


def verdict(delta: Delta | None) -> str:
    """``holds`` when the interval lies above 0 (the paper's sign), ``does not hold`` when it lies
    below, ``not resolvable here`` when it contains 0 or there is nothing to compare."""
    if delta is None:
        return UNRESOLVED
    if delta.ci_low > 0:
        return HOLDS
    if delta.ci_high < 0:
        return FAILS
    return UNRESOLVED


def swap_delta(study: Study, cmp: Comparer, pipeline: str) -> Delta | None:
    native, swapped = System(pipeline, NATIVE[pipeline]), System(pipeline, SWAPPED[pipeline])
    if native not in study.scores or swapped not in study.scores:
        return None
    return cmp.delta(f"swap-{pipeline}", study.scores[native],
                     _paired_rows(study, native, swapped), list(study.benchmarks))


def strategy_swap(study: Study, cmp: Comparer) -> pd.DataFrame:
    """Native vs swapped strategy per pipeline: our average delta with its CI beside the paper's."""
    paper = published.strategy_swap()
    rows = []
    for pipeline in NATIVE:
        delta = swap_delta(study, cmp, pipeline)
        if delta is None:  # a pipeline without both strategies
            continue
        native, swapped = System(pipeline, NATIVE[pipeline]), System(pipeline, SWAPPED[pipeline])
        benches = list(study.benchmarks)
        row = {
            "pipeline": pipeline, "native": native.variant, "swapped": swapped.variant,
            "n_seeds": len(study.seeds[native]),
            "native_avg": seed_mean_std([study.scores[native][b] for b in benches])[0],
            "swapped_avg": seed_mean_std([study.scores[swapped][b] for b in benches])[0],
        }  # fmt: skip
        _put(row, "delta", delta)
        row.update({f"paper_{k}": v for k, v in paper[pipeline].items()})
        row["verdict"] = verdict(delta)
        rows.append(row)
    return pd.DataFrame(rows)


def ablations(study: Study, cmp: Comparer) -> pd.DataFrame:
    """Each ablation against its parent variant trained with the same seed(s)."""
    rows = []
    for name, scores in study.ablations.items():
        run = study.ablation_runs[name]
        parent = System(run["pipeline"], run["variant"])
        if parent not in study.scores:
            continue
        seeds = study.ablation_seeds[name]
        picked = _seed_rows(study.scores[parent], study.seeds[parent], seeds,
                            f"ablation {name}: its parent {parent.key}")
        for bench, benches in cmp.bench_sets(study):
            row = {
                "ablation": name, "pipeline": parent.pipeline, "parent": parent.variant,
                "overrides": json.dumps(run.get("overrides", {}), sort_keys=True),
                "seeds": " ".join(str(s) for s in seeds), "benchmark": bench,
                "mean": seed_mean_std([scores[b] for b in benches])[0],
                "parent_mean": seed_mean_std([picked[b] for b in benches])[0],
            }  # fmt: skip
            delta = cmp.delta(f"ablation-{name}", scores, picked, benches)
            _put(row, "delta", delta)
            rows.append(row)
    return pd.DataFrame(rows)


def _claim_counterparts(study: Study, cmp: Comparer) -> dict[str, tuple[str, Delta | None]]:
    """Our measurement for each headline claim we can test at this scale (claim text -> what we
    compare, its delta). Claims absent here are not resolvable from evaluation results."""

    def vs(system: System, baseline: System, benches: list[str]) -> Delta | None:
        if system not in study.scores or baseline not in study.scores:
            return None
        return cmp.delta(f"claim-{system.key}-{baseline.key}", study.scores[system],
                         study.scores[baseline], benches)

    avg = list(study.benchmarks)
    code = ["humaneval"] if "humaneval" in study.benchmarks else []
    return {
        "avg gain of best TIDE system over non-distilled BD3LM (8 benchmarks)": (
            "A: TIDE-Cross avg - BD3LM avg (the paper's best system)",
            vs(System("cross", "tide_cross"), BD3LM, avg)),
        "HumanEval gain over same-size AR baseline": (
            "B: TIDE-Shared HumanEval - AR HumanEval",
            vs(System("shared", "tide_shared"), AR, code) if code else None),
        "native beats swapped strategy (Pipeline A)": (
            "A: TIDE-Cross avg - A: TIDE-Shared avg (same seeds)", swap_delta(study, cmp, "cross")),
        "native beats swapped strategy (Pipeline B)": (
            "B: TIDE-Shared avg - B: TIDE-Cross avg (same seeds)", swap_delta(study, cmp, "shared")),
    }


def _best_variant_claims(study: Study, cmp: Comparer) -> list[dict[str, Any]]:
    """The paper's native strategy is the best variant of its pipeline (its main table): our
    paired average delta to each other paper variant of the pipeline (same seeds). ``ours`` is the
    closest competitor's; the verdict holds only when every interval lies above 0 and fails when
    one lies below."""
    rows = []
    for pipeline, native in NATIVE.items():
        best = System(pipeline, native)
        others = [s for s in study.scores if s.pipeline == pipeline and s != best
                  and s in published.PAPER_COLUMNS]
        if best not in study.scores or not others:
            continue
        benches = list(study.benchmarks)
        deltas = {o: cmp.delta(f"best-{best.key}-{o.key}", study.scores[best],
                               _paired_rows(study, best, o), benches) for o in others}
        closest = min(deltas, key=lambda o: deltas[o].value)
        paper = [published.paper_score(o, AVG) for o in others]
        margin = published.paper_score(best, AVG) - max(paper) if None not in paper else None
        verdicts = {verdict(d) for d in deltas.values()}
        row = {
            "claim": f"{published.system_label(best)} is the best variant of Pipeline "
                     f"{published.PIPELINE_LETTER[pipeline]} (avg)",
            "paper": "" if margin is None else f"{margin:+.2f} over the next",
            "paper_derived_from": "main_results.csv: the pipeline's averages",
            "ours": f"{published.system_label(best)} avg - {published.system_label(closest)} avg "
                    f"(the closest of {len(others)}, same seeds)",
        }  # fmt: skip
        _put(row, "ours_delta", deltas[closest])
        row["verdict"] = (FAILS if FAILS in verdicts else
                          HOLDS if verdicts == {HOLDS} else UNRESOLVED)
        rows.append(row)
    return rows


def claims(study: Study, cmp: Comparer, efficiency: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every headline claim of the paper (and that each pipeline's native strategy is its best
    variant), our counterpart and its verdict: from the interval for the evaluation claims, from
    the profiles' ratios for the efficiency claims (``efficiency``: the efficiency table,
    :func:`tide.tables.efficiency.efficiency_claims` says which rows can test them)."""

    ours = _claim_counterparts(study, cmp)
    measured = efficiency_claims(efficiency) if efficiency is not None else {}
    rows = []
    for claim in published.headline_claims():
        what, delta = ours.get(claim["claim"], (None, None))
        row = {"claim": claim["claim"], "paper": claim["value"],
               "paper_derived_from": claim["derived_from"],
               "ours": what or "no counterpart in the evaluation results or profiles (the "
                               "training-time claim needs timed distillation runs)"}
        _put(row, "ours_delta", delta)
        row["ours_ratio"] = None
        row["verdict"] = verdict(delta)
        if claim["claim"] in measured:
            row["ours"], row["ours_ratio"], row["verdict"] = measured[claim["claim"]]
        rows.append(row)
    return pd.DataFrame(rows + _best_variant_claims(study, cmp))
