"""``generate_world(cfg, out_dir)``: write the corpus splits, held-out task files and a manifest.

Layout::

    out_dir/corpus/pretrain.jsonl   {"text", "family"}  family = document kind: facts, stories,
                                                          gsm8k, math, bbh, code
    out_dir/corpus/sft.jsonl        {"messages": [user, assistant], "family", "id"}
    out_dir/corpus/distill.jsonl    same format, other training items (the teachers trained on them)
    out_dir/corpus/distill_unseen.jsonl  same format, rows no model trained on: the distillation data
    out_dir/corpus/signal_probe.jsonl    same format, unseen by every model, distilled ones included:
                                         where the teacher-signal stage measures the students
    out_dir/tasks/<family>.jsonl    held-out items (see tide.world.core.Item.heldout_record)
    out_dir/manifest.json           {"seed", "config", "files": {relpath: sha256}, "counts",
                                     "splits": {split: what it is for}}

The same config gives byte-identical files: every random choice comes from a named
``random.Random`` stream (tide.world.rng), JSON is written with sorted keys and ``\\n`` line ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tide.outputs import fresh_output_dir
from tide.world.config import FAMILIES, WorldConfig
from tide.world.core import Family, Item, Problem, World, build_world
from tide.world.families import FAMILY_CLASSES
from tide.world.families.bbh import Bbh
from tide.world.pretrain import pretrain_records
from tide.world.rng import derive_rng
from tide.world.split import Split, split_enumerated, split_sampled

log = logging.getLogger(__name__)

# the corpus splits no model trains on, with the size key of each
UNSEEN_SPLITS = {"distill_unseen": "distill_unseen_per_family", "signal_probe": "signal_per_family"}
# what each split is for (the manifest's record; the config's `splits` keys say who trains on what)
SPLIT_ROLES = {
    "pretrain": "plain text: AR pretraining of the student and of both teachers",
    "sft": "chats: the student's AR pretraining and BD3LM SFT, and all teacher phases",
    "distill": "chats: teacher training only (teachers.*.splits); kept so the pushed teachers stay "
               "valid - not distilled on, since its soft labels there are nearly one-hot",
    "distill_unseen": "chats in no model's training splits, disjoint from every held-out problem: "
                      "the distillation data of both pipelines",
    "signal_probe": "chats unseen by every model, distilled students included: the teacher-signal "
                    "stage's fixed rows",
}
N_EXEMPLAR_POOL = 64  # bbh: rendered training items per subtask that few-shot exemplars come from
_DEDUP_TRIES = 30


def make_families(world: World) -> dict[str, Family]:
    return {name: FAMILY_CLASSES[name](world) for name in FAMILIES}


def make_splits(world: World, families: dict[str, Family]) -> dict[str, Split]:
    """Held-out problems and training sources of every family."""
    n_eval = world.config.sizes.eval_per_family
    seed = world.config.seed
    splits: dict[str, Split] = {}
    groups: dict[str, list[Family]] = {}
    for fam in families.values():
        if fam.enumerate_problems() is None:
            splits[fam.name] = split_sampled(seed, fam, n_eval)
        else:
            groups.setdefault(fam.shared_space or fam.name, []).append(fam)
    for group, fams in groups.items():
        splits.update(split_enumerated(seed, group, fams, n_eval))
    return {name: splits[name] for name in FAMILIES}


def bbh_exemplars(world: World, split: Split) -> dict[str, list[Item]]:
    """Rendered training items per subtask; the first ``shots`` are the evaluation exemplars."""
    fam = split.family
    rng = derive_rng(world.config.seed, "bbh", "exemplars")
    pools: dict[str, list[Item]] = {s: [] for s in world.config.bbh.subtasks}
    while min(len(v) for v in pools.values()) < N_EXEMPLAR_POOL:
        item = fam.render(split.draw_training(rng), rng)
        if len(pools[item.subtask]) < N_EXEMPLAR_POOL:
            pools[item.subtask].append(item)
    return pools


def render_unseen(fam: Family, draw: Callable[[], Problem], rng: random.Random, seen: set[str]
                  ) -> tuple[Item, bool]:
    """Render ``draw()`` until the prompt is not in ``seen`` (at most ``_DEDUP_TRIES`` times); the
    prompt joins ``seen``. Returns the item and whether it is new."""
    for _ in range(_DEDUP_TRIES):
        item = fam.render(draw(), rng)
        if item.prompt not in seen:
            seen.add(item.prompt)
            return item, True
    return item, False


def heldout_records(world: World, split: Split, exemplars: dict[str, list[Item]] | None
                    ) -> list[dict[str, Any]]:
    fam = split.family
    rng = derive_rng(world.config.seed, fam.name, "heldout")
    # with ``heldout_renders`` > 1, round after round over the problems (other options each time),
    # so that the first n items ask n distinct problems
    rounds = [p for _ in range(fam.heldout_renders()) for p in split.heldout]
    out, seen, repeated = [], set(), 0
    for problem in rounds[:world.config.sizes.eval_per_family]:
        item, new = render_unseen(fam, lambda p=problem: p, rng, seen)
        repeated += not new
        rec = item.heldout_record(f"{fam.name}/heldout/{len(out):05d}")
        if exemplars is not None:
            rec["fewshot"] = [{"prompt": e.prompt, "response": e.response}
                              for e in exemplars[item.subtask][:world.config.bbh.shots]]
        out.append(rec)
    if repeated:
        log.warning("%s: %d held-out items repeat an earlier item's prompt (too few distinct renders "
                    "of %d held-out problems; lower heldout_renders)", fam.name, repeated,
                    len(split.heldout))
    return out


def training_conversations(world: World, split: Split, exemplars: dict[str, list[Item]] | None,
                           seen: set[str] | None = None) -> tuple[list[dict], list[dict], int]:
    """(sft, distill, duplicates): ``sizes.*_per_family`` conversations with distinct user turns
    where the space allows (``duplicates`` counts the ones that could not be made distinct).
    ``seen`` collects the prompts used."""
    fam, sizes = split.family, world.config.sizes
    seen = set() if seen is None else seen
    duplicates = 0
    result = []
    for name, n in (("sft", sizes.sft_per_family), ("distill", sizes.distill_per_family)):
        rng = derive_rng(world.config.seed, fam.name, name)
        convs = []
        for i in range(n):
            item, new = render_unseen(fam, lambda r=rng: split.draw_training(r), rng, seen)
            duplicates += not new
            convs.append(_conversation(fam, item, rng, exemplars, f"{fam.name}/{name}/{i:05d}"))
        result.append(convs)
    return result[0], result[1], duplicates


def _conversation(fam: Family, item: Item, rng: random.Random,
                  exemplars: dict[str, list[Item]] | None, row_id: str) -> dict:
    pool = exemplars[item.subtask] if exemplars is not None else []
    return item.conversation(row_id, fam.training_user_turn(item, rng, pool))


def unseen_conversations(world: World, split: Split, exemplars: dict[str, list[Item]] | None,
                         seen: set[str], name: str, n: int) -> tuple[list[dict], int]:
    """``n`` conversations from the stream ``name`` whose prompts are in no other split: a render
    that repeats a ``seen`` prompt is dropped, not kept (returns the rows and how many were
    dropped). The problems avoid every held-out key, as all training draws do."""
    fam = split.family
    rng = derive_rng(world.config.seed, fam.name, name)
    convs, dropped = [], 0
    for _ in range(n):
        item, new = render_unseen(fam, lambda r=rng: split.draw_training(r), rng, seen)
        if not new:
            dropped += 1
            continue
        convs.append(_conversation(fam, item, rng, exemplars, f"{fam.name}/{name}/{len(convs):05d}"))
    return convs, dropped


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate_world(cfg: dict | None, out_dir: Path) -> dict[str, Any]:
    """Write the world for the ``world:`` config mapping ``cfg``; return the manifest."""
    start = time.perf_counter()
    wcfg = WorldConfig.from_dict(cfg)
    world = build_world(wcfg)
    families = make_families(world)
    splits = make_splits(world, families)
    exemplars = bbh_exemplars(world, splits["bbh"])
    out_dir = fresh_output_dir(out_dir)

    counts: dict[str, Any] = {"heldout": {}, "sft": {}, "distill": {}, "duplicate_prompts": {}}
    sft, distill = [], []
    seen: dict[str, set[str]] = {name: set() for name in FAMILIES}
    for name in FAMILIES:
        ex = exemplars if isinstance(families[name], Bbh) else None
        rows = heldout_records(world, splits[name], ex)
        _write_jsonl(out_dir / "tasks" / f"{name}.jsonl", rows)
        s, d, dup = training_conversations(world, splits[name], ex, seen[name])
        sft += s
        distill += d
        counts["heldout"][name] = len(rows)
        counts["sft"][name], counts["distill"][name] = len(s), len(d)
        counts["duplicate_prompts"][name] = dup
    # interleave the families, so that any prefix of a split is a fair sample
    derive_rng(wcfg.seed, "sft", "order").shuffle(sft)
    derive_rng(wcfg.seed, "distill", "order").shuffle(distill)
    pretrain = pretrain_records(world, splits)
    _write_jsonl(out_dir / "corpus" / "sft.jsonl", sft)
    _write_jsonl(out_dir / "corpus" / "distill.jsonl", distill)
    _write_jsonl(out_dir / "corpus" / "pretrain.jsonl", pretrain)
    counts["pretrain"] = {}
    for rec in pretrain:
        counts["pretrain"][rec["family"]] = counts["pretrain"].get(rec["family"], 0) + 1
    counts["facts"] = len(world.facts.facts())
    # the splits no model trains on come last, from their own streams, so that the ones above stay
    # byte-identical to the worlds written before they existed (the pushed models trained on those)
    for split_name, n in UNSEEN_SPLITS.items():
        rows, counts[split_name], counts[f"{split_name}_dropped"] = [], {}, {}
        for name in FAMILIES:
            ex = exemplars if isinstance(families[name], Bbh) else None
            convs, dropped = unseen_conversations(world, splits[name], ex, seen[name], split_name,
                                                  getattr(wcfg.sizes, n))
            rows += convs
            counts[split_name][name], counts[f"{split_name}_dropped"][name] = len(convs), dropped
        derive_rng(wcfg.seed, split_name, "order").shuffle(rows)
        _write_jsonl(out_dir / "corpus" / f"{split_name}.jsonl", rows)

    rels = ["corpus/pretrain.jsonl", "corpus/sft.jsonl", "corpus/distill.jsonl",
            *(f"corpus/{name}.jsonl" for name in UNSEEN_SPLITS),
            *(f"tasks/{name}.jsonl" for name in FAMILIES)]
    manifest = {"seed": wcfg.seed, "config": wcfg.to_dict(),
                "files": {rel: _sha256(out_dir / rel) for rel in rels}, "counts": counts,
                "splits": SPLIT_ROLES}
    with open(out_dir / "manifest.json", "w", encoding="utf-8", newline="\n") as fh:
        fh.write(json.dumps(manifest, sort_keys=True, indent=2) + "\n")
    log.info("world (seed %d) written to %s in %.1f s: held-out %s", wcfg.seed, out_dir,
             time.perf_counter() - start, counts["heldout"])
    return manifest
