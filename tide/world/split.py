"""Choosing held-out problems and drawing training problems that avoid them.

Small problem spaces (mmlu, mmlu_pro, hellaswag, code) are enumerated, shuffled per stratum and
split by ``heldout_fraction`` (code: humaneval and mbpp split one shared space). Large spaces
(gsm8k, bbh, math) are sampled: held-out problems have distinct keys, training draws reject them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tide.world.core import Family, Problem
from tide.world.rng import derive_rng

_MAX_TRIES = 2000


@dataclass
class Split:
    """Held-out problems of one family and where its training problems come from."""

    family: Family
    heldout: list[Problem]
    excluded: set[str]  # keys no training item may use (all held-out keys of the shared space)
    pool: dict[str | None, list[Problem]] | None = None  # enumerated training problems by stratum
    _turn: int = field(default=0, repr=False)

    def draw_training(self, rng: random.Random) -> Problem:
        """The next training problem (strata in turn, so every subtask / template is covered)."""
        strata = [s for s in (self.pool or {s: None for s in self.family.strata()})
                  if self.pool is None or self.pool[s]]
        if not strata:
            raise ValueError(f"{self.family.name}: no training problems left after holding out "
                             f"{len(self.heldout)}; lower its heldout_fraction")
        stratum = strata[self._turn % len(strata)]
        self._turn += 1
        if self.pool is not None:
            return rng.choice(self.pool[stratum])
        for _ in range(_MAX_TRIES):
            problem = self.family.sample_problem(rng, stratum)
            if problem.key not in self.excluded:
                return problem
        raise ValueError(f"{self.family.name}: the problem space of {stratum!r} is exhausted by "
                         "the held-out items; lower sizes.eval_per_family or raise the difficulty")


def _by_stratum(problems: list[Problem]) -> dict[str | None, list[Problem]]:
    out: dict[str | None, list[Problem]] = {}
    for p in problems:
        out.setdefault(p.stratum, []).append(p)
    return out


def _round_robin(groups: list[list[Problem]]) -> list[Problem]:
    out, i = [], 0
    while any(i < len(g) for g in groups):
        out += [g[i] for g in groups if i < len(g)]
        i += 1
    return out


def split_enumerated(seed: int, group: str, families: list[Family], n_eval: int
                     ) -> dict[str, Split]:
    """Split one enumerated space among the held-out sets of ``families`` and a training pool."""
    rng = derive_rng(seed, "split", group)
    strata = _by_stratum(families[0].enumerate_problems())
    for problems in strata.values():
        rng.shuffle(problems)
    sizes = {s: len(problems) for s, problems in strata.items()}
    heldout: dict[str, list[Problem]] = {}
    for fam in families:
        frac = fam.heldout_fraction()
        taken = []
        for s, problems in strata.items():
            k = int(frac * sizes[s])  # each family holds out its share of every stratum
            taken.append(problems[:k])
            strata[s] = problems[k:]
        chosen = _round_robin(taken)
        heldout[fam.name] = chosen[:n_eval]
        for p in chosen[n_eval:]:  # candidates beyond the requested size go back to training
            strata[p.stratum].append(p)
    excluded = {p.key for h in heldout.values() for p in h}
    pool = {s: sorted(ps, key=lambda p: p.key) for s, ps in strata.items()}
    return {f.name: Split(f, heldout[f.name], excluded, pool) for f in families}


def split_sampled(seed: int, family: Family, n_eval: int) -> Split:
    """``n_eval`` held-out problems with distinct keys, balanced over the family's strata."""
    rng = derive_rng(seed, "split", family.name)
    strata = family.strata()
    heldout: list[Problem] = []
    keys: set[str] = set()
    full: set[str | None] = set()
    i = 0
    while len(heldout) < n_eval and len(full) < len(strata):
        stratum = strata[i % len(strata)]
        i += 1
        if stratum in full:
            continue
        for _ in range(200):
            p = family.sample_problem(rng, stratum)
            if p.key not in keys:
                heldout.append(p)
                keys.add(p.key)
                break
        else:
            full.add(stratum)  # this stratum's space is (nearly) used up
    return Split(family, heldout, keys, None)
