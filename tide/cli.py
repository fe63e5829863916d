"""Command line: ``python -m tide <stage> ...``, the one face every workflow rule calls.

Each stage reads the project config (``--config FILE``, plus ``--config-json`` overrides that the
workflow passes), validates it against the schema, calls one function of the package and writes a
provenance record (config, seed, versions, git sha) beside its output. Run ``python -m tide --help``.

Config keys, declared once per stage. ``@stage(name, help, add_args, keys=..., more_keys=...)``
names the dotted config paths the stage reads: ``keys`` are templates filled from the stage's
argument values (``"teachers.{kind}"`` with ``--kind a`` reads ``teachers.a``), ``more_keys`` an
optional function of the argument values (a mapping: argparse dest -> value) giving the keys that
depend on them otherwise (``--ablation NAME`` adds ``distill.ablations.runs.NAME``, ``prepare
--role R`` reads the section ``tide.checkpoints.PREPARED[R]`` names). The declaration serves three
places, so they cannot drift:

* the workflow: a rule passes ``--config-json`` as :func:`stage_json` gives it (those keys, and at
  paper scale ``scale``), so it re-runs when one of them changes and not otherwise;
* the stage: it gets a :class:`tide.config.ConfigView` of those keys plus ``scale``; reading any
  other key raises :class:`tide.config.ConfigError` naming the stage and the key (exit status 2);
* its provenance record: :func:`tide.provenance.config_record` of that view (plus stage extras).

This module imports nothing heavy at the top (the workflow imports :func:`stage_json`); each stage
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("tide")
# No network at run time: the hub clients read these when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@dataclass(frozen=True)
class Stage:
    """A sub-command: its help, its arguments, its function ``run(config, args)`` and the config
    keys it reads (see the module docstring)."""

    name: str
    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Any, argparse.Namespace], None]
    keys: tuple[str, ...]
    more_keys: Callable[[Mapping[str, Any]], Iterable[str]] | None = None

    def config_keys(self, args: Mapping[str, Any]) -> tuple[str, ...]:
        """The dotted config paths the stage reads with argument values ``args`` (dest -> value;
        extra entries are ignored), in declaration order; ``ValueError`` names a missing one."""
        try:
            keys = [template.format_map(args) for template in self.keys]
            keys += self.more_keys(args) if self.more_keys is not None else ()
        except KeyError as err:
            raise ValueError(f"stage {self.name!r}: its config keys need the argument "
                             f"{err.args[0]!r} (given: {', '.join(args) or 'none'})") from None
        return tuple(dict.fromkeys(keys))


STAGES: dict[str, Stage] = {}


def stage(name: str, help: str, add_args: Callable[[argparse.ArgumentParser], None], *,
          keys: tuple[str, ...],
          more_keys: Callable[[Mapping[str, Any]], Iterable[str]] | None = None):
    """Register ``fn(config, args)`` as the sub-command ``name``, reading the config ``keys``
    (templates over its arguments) and ``more_keys(args)``: see the module docstring."""

    def wrap(fn):
        STAGES[name] = Stage(name, help, add_args, fn, tuple(keys), more_keys)
        return fn

    return wrap


def stage_keys(name: str, /, **args: Any) -> tuple[str, ...]:
    """The config keys stage ``name`` reads given its argument values ``args`` (by dest name)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r} (known: {', '.join(STAGES)})")
    return STAGES[name].config_keys(args)


def stage_json(config: dict, name: str, /, **args: Any) -> str:
    """What a workflow rule passes as ``--config-json`` to stage ``name`` called with the argument
    values ``args``: its declared keys' values in ``config`` as canonical JSON
    (:func:`tide.config.section_json`; at paper scale ``scale`` goes along)."""
    from tide.config import section_json

    return section_json(config, *stage_keys(name, **args))


def _out_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output directory")


# --- world ------------------------------------------------------------------------------------
@stage("world", "generate the tiny world: corpus splits + 8 held-out task families", _out_arg,
       keys=("world",))
def run_world(config: dict, args: argparse.Namespace) -> None:
    from tide.provenance import config_record, write_record
    from tide.world import generate_world

    manifest = generate_world(config["world"], args.out)
    write_record(args.out / "provenance.json", config_record(config), config["world"]["seed"],
                 counts=manifest.get("counts"))
    log.info("world written to %s", args.out)


# --- paper-scale data and checkpoints ----------------------------------------------------------
@stage("data", "the paper's distillation mixture through `datasets` (data.mixture): distill + probe rows",
       _out_arg, keys=("data",))
def run_data(config: dict, args: argparse.Namespace) -> None:
    from tide.mixture import build_mixture
    from tide.provenance import config_record, write_record

    counts = build_mixture(config["data"], args.out)
    write_record(args.out / "provenance.json", config_record(config), None, counts=counts)
    log.info("distillation data written to %s: %s", args.out, counts)


def _prepare_args(p: argparse.ArgumentParser) -> None:
    from tide.checkpoints import PREPARED

    p.add_argument("--role", choices=sorted(PREPARED), required=True)
    p.add_argument("--tokenizer", type=Path, required=True, help="the model's tokenizer directory")
    p.add_argument("--rows", type=Path, required=True, help="chat rows of the likelihood check")
    _out_arg(p)


def _prepared_section(args: Mapping[str, Any]) -> tuple[str]:
    """The config section of the checkpoint ``--role`` names (tide.checkpoints.PREPARED)."""
    from tide.checkpoints import PREPARED

    role = args["role"]
    if role not in PREPARED:
        raise ValueError(f"unknown role {role!r} (known: {', '.join(PREPARED)})")
    group, key, *_ = PREPARED[role]
    return (f"{group}.{key}",)


@stage("prepare", "fetch a released checkpoint (hub id or directory), verify it and save it",
       _prepare_args, keys=("students.block_size",), more_keys=_prepared_section)
def run_prepare(config: dict, args: argparse.Namespace) -> None:
    from tide.checkpoints import prepare_role
    from tide.provenance import config_record, write_record

    found = prepare_role(args.role, config, args.tokenizer, args.rows, args.out)
    write_record(args.out / "provenance.json", config_record(config), None, verification=found)


# --- tokenizers -------------------------------------------------------------------------------
def _tokenizer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, default=None,
                   help="world corpus directory (corpus/) to train on (not with tokenizers.pretrained)")
    _out_arg(p)


@stage("tokenizers", "train the student, teacher-B and teacher-A tokenizers", _tokenizer_args,
       keys=("tokenizers",))
def run_tokenizers(config: dict, args: argparse.Namespace) -> None:
    from tide.pretrained_tokenizers import fetch_tokenizers
    from tide.provenance import config_record, write_record
    from tide.tokenization import corpus_texts, train_tokenizers

    section = dict(config["tokenizers"])
    pretrained = section.pop("pretrained")
    if any(pretrained.values()):
        paths = fetch_tokenizers(pretrained, args.out)
    elif args.corpus is None:
        raise SystemExit("tide tokenizers: --corpus is needed to train (tokenizers.pretrained is empty)")
    else:
        paths = train_tokenizers(list(corpus_texts(args.corpus)), args.out, section)
    write_record(args.out / "provenance.json", config_record(config), None,
                 tokenizers={k: str(v) for k, v in paths.items()})
    log.info("tokenizers written: %s", ", ".join(str(p) for p in paths.values()))


# --- training: students and teachers -----------------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--world", type=Path, required=True, help="world directory (corpus/)")
    p.add_argument("--tokenizer", type=Path, required=True, help="tokenizer directory")
    p.add_argument("--work", type=Path, required=True,
                   help="resumable checkpoints (kept outside the declared outputs)")
    _out_arg(p)


def _sft_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init", type=Path, required=True, help="a2d-converted student directory")
    _train_args(p)


def _a2d_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ar", type=Path, required=True, help="AR student directory")
    p.add_argument("--tokenizer", type=Path, required=True, help="student tokenizer directory")
    _out_arg(p)


def _teacher_args(p: argparse.ArgumentParser) -> None:
    from tide.pipelines import TEACHERS

    p.add_argument("--kind", choices=list(TEACHERS), required=True,
                   help="a: LLaDA2-MoE (own tokenizer), b: WeDLM (shared vocabulary)")
    _train_args(p)


@stage("train-ar", "AR pretraining of the student (the AR baseline)", _train_args,
       keys=("students.ar", "students.model"))
def run_train_ar(config: dict, args: argparse.Namespace) -> None:
    from tide.provenance import config_record
    from tide.training.recipes import train_ar

    ar, model = config["students"]["ar"], config["students"]["model"]
    train_ar(ar | {"model": model}, args.world, args.tokenizer, args.work, args.out,
             record=config_record(config))


@stage("a2d", "convert the AR student into a BD3LM student (same weights, no causal mask)",
       _a2d_args, keys=("students.right_shift_logits",))
def run_a2d(config: dict, args: argparse.Namespace) -> None:
    from tide.provenance import config_record
    from tide.training.recipes import convert_a2d

    convert_a2d(args.ar, args.tokenizer, args.out, record=config_record(config),
                right_shift_logits=config["students"]["right_shift_logits"])


@stage("sft-bd3lm", "BD3LM SFT of the converted student (the BD3LM baseline)", _sft_args,
       keys=("students.sft", "students.block_size"))
def run_sft(config: dict, args: argparse.Namespace) -> None:
    from tide.provenance import config_record
    from tide.training.recipes import train_bd3lm_sft

    sft, block_size = config["students"]["sft"], config["students"]["block_size"]
    train_bd3lm_sft(sft, block_size, args.init, args.world, args.tokenizer, args.work, args.out,
                    record=config_record(config))


@stage("train-teacher", "train a diffusion teacher (a: LLaDA2-MoE, b: WeDLM)", _teacher_args,
       keys=("teachers.{kind}", "students.block_size"))
def run_train_teacher(config: dict, args: argparse.Namespace) -> None:
    from tide.provenance import config_record
    from tide.training.recipes import train_teacher

    train_teacher(args.kind, config["teachers"][args.kind], config["students"]["block_size"],
                  args.world, args.tokenizer, args.work, args.out, record=config_record(config))


# --- distillation -----------------------------------------------------------------------------


def _pipeline_arg(p: argparse.ArgumentParser) -> None:
    from tide.pipelines import PIPELINES

    p.add_argument("--pipeline", choices=list(PIPELINES), required=True)


def _tokenizers_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizers", type=Path, required=True, help="directory of the three tokenizers")


def _align_args(p: argparse.ArgumentParser) -> None:
    _pipeline_arg(p)
    p.add_argument("--rows", type=Path, required=True,
                   help="chat rows to align (the world's corpus/distill_unseen.jsonl or signal_probe.jsonl)")
    _tokenizers_arg(p)
    p.add_argument("--out", type=Path, required=True, help="alignment cache file")


@stage("align", "align chat rows between student and teacher tokens (once per pipeline and split)",
       _align_args, keys=("distill.max_student_len", "distill.max_teacher_len",
                          "distill.pipelines.{pipeline}.max_teacher_len"))
def run_align(config: dict, args: argparse.Namespace) -> None:
    from tide.distill.stages import build_alignment
    from tide.pipelines import pipeline_tokenizer

    section = config["distill"]
    teacher_len = section["pipelines"][args.pipeline]["max_teacher_len"]
    if teacher_len is not None:
        section = {**section, "max_teacher_len": teacher_len}
    stats = build_alignment(args.pipeline, section, args.tokenizers / "student",
                            args.tokenizers / pipeline_tokenizer(args.pipeline),
                            args.rows, args.out)
    log.info("alignment cache %s: %s", args.out, stats)


def _distill_args(p: argparse.ArgumentParser) -> None:
    _pipeline_arg(p)
    p.add_argument("--variant", required=True, help="paper name (tide_cross, tide_shared, calm, kl, ce_only)")
    p.add_argument("--ablation", default=None, help="name of a distill.ablations.runs entry")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--init", type=Path, required=True, help="BD3LM student to start from")
    p.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint directory")
    p.add_argument("--cache", type=Path, required=True, help="alignment cache of the pipeline")
    _tokenizers_arg(p)
    p.add_argument("--work", type=Path, required=True, help="resumable checkpoints")
    _out_arg(p)


def _ablation_keys(args: Mapping[str, Any]) -> tuple[str, ...]:
    """An ablation run reads its own entry of distill.ablations.runs."""
    return (f"distill.ablations.runs.{args['ablation']}",) if args.get("ablation") else ()


@stage("distill", "distil a teacher into the BD3LM student (one pipeline, variant, seed)",
       _distill_args, keys=("distill.train", "distill.lean_losses", "students.block_size",
                            "distill.pipelines.{pipeline}"), more_keys=_ablation_keys)
def run_distill(config: dict, args: argparse.Namespace) -> None:
    from tide.distill.objectives import objective
    from tide.distill.stages import distill
    from tide.pipelines import pipeline_tokenizer, pipeline_train
    from tide.provenance import config_record

    section = config["distill"]
    pipeline = section["pipelines"][args.pipeline]
    overrides = {k: v for k, v in pipeline["objective"].items() if v is not None}
    if args.ablation:
        runs = section["ablations"]["runs"]
        if args.ablation not in runs:
            raise SystemExit(f"unknown ablation {args.ablation!r}: distill.ablations.runs "
                             "has no such entry")
        overrides |= runs[args.ablation]["overrides"]
    obj = objective(args.pipeline, args.variant, overrides)
    train = pipeline_train(section, args.pipeline)  # distill.train with the pipeline's overrides
    record = config_record(config, train=train, pipeline=args.pipeline, variant=args.variant,
                           ablation=args.ablation, objective=vars(obj))
    distill(args.pipeline, obj, args.seed, {**section, "train": train},
            config["students"]["block_size"],
            init_dir=args.init, teacher_dir=args.teacher, cache_path=args.cache,
            student_tok=args.tokenizers / "student",
            teacher_tok=args.tokenizers / pipeline_tokenizer(args.pipeline),
            work_dir=args.work, out_dir=args.out, record=record)


def _signal_args(p: argparse.ArgumentParser) -> None:
    _pipeline_arg(p)
    p.add_argument("--model", type=Path, required=True,
                   help="checkpoint to measure (the teacher's directory measures the teacher)")
    p.add_argument("--teacher", type=Path, required=True, help="the pipeline's teacher checkpoint")
    p.add_argument("--cache", type=Path, required=True, help="alignment cache of the probe rows")
    _tokenizers_arg(p)
    p.add_argument("--out", type=Path, required=True, help="result JSON")


@stage("signal", "a model's KL to the pipeline's teacher, gold NLL and top-1 on unseen rows",
       _signal_args, keys=("distill.signal", "students.block_size"))
def run_signal(config: dict, args: argparse.Namespace) -> None:
    from tide.distill.stages import measure_signal
    from tide.pipelines import pipeline_tokenizer
    from tide.provenance import config_record

    measures = measure_signal(
        args.pipeline, args.model, args.teacher, args.cache, student_tok=args.tokenizers / "student",
        teacher_tok=args.tokenizers / pipeline_tokenizer(args.pipeline),
        block_size=config["students"]["block_size"], section=config["distill"]["signal"],
        out_path=args.out, record=config_record(config))
    log.info("teacher signal of %s (%s): %s", args.model, args.pipeline, measures)


# --- evaluation -------------------------------------------------------------------------------
# what evaluating a model reads: the eval section, the block size its samplers use, the seed and
# the attention kernels (tide.eval.run.stage_sampler_args); its record is written by tide.eval.run
EVAL_KEYS = ("eval", "students.block_size", "seed", "attention")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="checkpoint directory")
    p.add_argument("--world", type=Path, default=None,
                   help="world directory (tasks/): the tiny tasks read it, the paper's do not")
    p.add_argument("--tasks", default="tiny_world", help="comma-separated lm-eval tasks")
    p.add_argument("--kind", default=None,
                   help="student|teacher_a|teacher_b|ar (default: from config.json)")
    _out_arg(p)


@stage("eval", "evaluate a checkpoint through lm-eval (the 8 tiny_world tasks by default)",
       _eval_args, keys=EVAL_KEYS)
def run_eval(config: dict, args: argparse.Namespace) -> None:
    from tide.eval.run import run_stage

    run_stage(config, args.model, args.world, args.out, tasks=args.tasks.split(","),
              model_kind=args.kind)


def _sanity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="checkpoint directory")
    p.add_argument("--world", type=Path, required=True, help="world directory (tasks/)")
    p.add_argument("--kind", default=None, help="student|teacher_a|teacher_b|ar")
    _out_arg(p)


@stage("sanity", "check a checkpoint on a few items of every task before the long evaluation",
       _sanity_args, keys=EVAL_KEYS)  # the seed too, unread: the sanity rule always passed it
def run_sanity(config: dict, args: argparse.Namespace) -> None:
    from tide.eval.quick import run_sanity as sanity

    sanity(config, args.model, args.world, args.out, model_kind=args.kind)


# --- profiling --------------------------------------------------------------------------------
def _profile_args(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path, help="checkpoint directory to profile")
    which.add_argument("--shape", help="a profile.random_weights_shapes name: real shape, random weights")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="tokenizer directory of --model (default: the checkpoint directory)")
    p.add_argument("--out", type=Path, required=True, help="result JSON")


# its section, the samplers the evaluation uses, the block size, the kernels
@stage("profile", "peak memory and time to generate profile.gen_length tokens, best of N (§h)",
       _profile_args, keys=("profile", "eval.sampler", "students.block_size", "attention"))
def run_profile(config: dict, args: argparse.Namespace) -> None:
    from tide.profiling import profile, write_profile
    from tide.provenance import config_record

    info = profile(config, model_dir=args.model, shape=args.shape, tokenizer_dir=args.tokenizer)
    write_profile(args.out, info, config_record(config))
    log.info("%s: best %.3f s for %d tokens, peak %.1f MiB (%s, %s)", info["model"],
             info["best_time_s"], info["generated_tokens"], info["peak_memory_bytes"] / 2**20,
             info["device"], info["dtype"])


# --- tables -----------------------------------------------------------------------------------
def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval", type=Path, required=True, help="evaluation results (results/eval)")
    p.add_argument("--curves", type=Path, required=True,
                   help="distilled models' loss curves (results/curves)")
    p.add_argument("--signal", type=Path, required=True,
                   help="every model's teacher signal (results/signal)")
    p.add_argument("--profile", type=Path, default=None,
                   help="the student's and teachers' profiles (results/profile); without it the "
                        "efficiency table holds the paper's rows only")
    p.add_argument("--figures", type=Path, required=True, help="figure directory")
    _out_arg(p)


@stage("tables", "the paper's tables and figures from the evaluation results, paper numbers beside",
       _tables_args, keys=("scale", "eval.tasks", "distill.seeds", "distill.pipelines",
                           "distill.ablations", "profile.random_weights_shapes", "tables"))
def run_tables(config: dict, args: argparse.Namespace) -> None:
    from tide.provenance import config_record, write_record
    from tide.tables import make_tables

    paths = make_tables(config, args.eval, args.curves, args.signal, args.out, args.figures,
                        args.profile)
    write_record(args.out / "provenance.json", config_record(config), config["tables"]["seed"],
                 files=sorted(paths))
    log.info("tables written to %s, figures to %s", args.out, args.figures)


# --- entry point ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tide", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for name, spec in STAGES.items():
        p = sub.add_parser(name, help=spec.help, description=spec.help)
        p.add_argument("--config", type=Path, default=None,
                       help="project config YAML (default: schema defaults = tiny scale)")
        p.add_argument("--config-json", default=None,
                       help="JSON object merged over --config (what workflow rules pass)")
        p.add_argument("--threads", type=int, default=None, help="torch threads for this process")
        spec.add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one stage with the command line ``argv``; returns the exit status (2: a config error)."""
    from tide.config import ConfigError, load_config, restrict_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    spec = STAGES[args.stage]
    try:
        overrides = json.loads(args.config_json) if args.config_json else None
        # the stage sees the keys it declares (and scale), no other
        config = restrict_config(load_config(args.config, overrides),
                                 spec.config_keys(vars(args)), args.stage)
    except (ConfigError, json.JSONDecodeError) as err:
        print(f"tide {args.stage}: configuration error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        spec.run(config, args)
    except ConfigError as err:  # an undeclared key, or a paper-scale key the rule did not pass
        print(f"tide {args.stage}: configuration error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
