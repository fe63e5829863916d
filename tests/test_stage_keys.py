"""Each stage's config keys, declared once (tide.cli): the view a stage gets refuses every other
key, and every rule of the DAG passes exactly what its stage declares."""

from __future__ import annotations

import copy
import json
import os
import pickle
import shlex
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tide.checkpoints import PREPARED
from tide.cli import STAGES, Stage, build_parser, main, stage_json, stage_keys
from tide.config import (
    ConfigError,
    ConfigView,
    deep_merge,
    load_config,
    restrict_config,
    section_json,
    validate_config,
)
from tide.pipelines import PIPELINES, TEACHERS

BIN = str(Path(sys.executable).parent)
TINY = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def _stage_parsers() -> dict[str, object]:
    """Stage name -> its argparse sub-parser."""
    sub = next(a for a in build_parser()._actions if a.dest == "stage")
    return dict(sub.choices)


def _arg_sets(config: dict, name: str) -> list[dict]:
    """Argument values covering every way stage ``name``'s keys depend on its arguments."""
    runs = list(config["distill"]["ablations"]["runs"])
    return [{"kind": k, "pipeline": p, "role": r, "ablation": a}
            for k in TEACHERS for p in PIPELINES for r in PREPARED for a in [None, *runs]]


def test_every_stage_declares_keys_the_config_has():
    config = load_config(TINY)
    parsers = _stage_parsers()
    assert set(parsers) == set(STAGES)
    for name, spec in STAGES.items():
        assert spec.keys or spec.more_keys, f"{name} declares no config key"
        dests = {a.dest for a in parsers[name]._actions}
        for template in spec.keys:  # every template field is one of the stage's arguments
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            assert fields <= dests, (name, template, fields - dests)
        for args in _arg_sets(config, name):
            keys = stage_keys(name, **args)
            assert keys and all("{" not in k for k in keys), (name, keys)
            json.loads(section_json(config, *keys))  # raises naming a key the config lacks


def test_keys_follow_the_arguments():
    assert stage_keys("train-teacher", kind="b") == ("teachers.b", "students.block_size")
    plain = stage_keys("distill", pipeline="shared")
    assert "distill.pipelines.shared" in plain
    assert not any(k.startswith("distill.ablations") for k in plain)
    assert stage_keys("distill", pipeline="shared", ablation="x") == (
        *plain, "distill.ablations.runs.x")
    for role, (group, key, *_) in PREPARED.items():
        assert f"{group}.{key}" in stage_keys("prepare", role=role)
    with pytest.raises(ValueError, match="'pipeline'"):
        stage_keys("align")
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        stage_json(load_config(None), "nope")


@pytest.fixture
def signal_view() -> tuple[dict, ConfigView]:
    config = load_config(None)
    return config, restrict_config(config, stage_keys("signal"), "signal")


def test_view_refuses_an_undeclared_key_naming_stage_and_key(signal_view):
    config, view = signal_view
    assert view["distill"]["signal"] == config["distill"]["signal"]
    assert view["students"]["block_size"] == config["students"]["block_size"]
    assert view["scale"] == "tiny"  # always there
    distill = view["distill"]
    reads = {
        "distill.train": lambda: distill["train"],
        "distill.lean_losses": lambda: distill.get("lean_losses", False),  # no silent default
        "distill.seeds": lambda: "seeds" in distill,
        "distill.pipelines": lambda: distill.setdefault("pipelines", {}),
        "students.model": lambda: view["students"].pop("model", None),
        "seed": lambda: view.get("seed", 0),
        "world": lambda: view["world"],
    }
    for key, read in reads.items():
        with pytest.raises(ConfigError, match=rf"stage 'signal' reads config key '{key}'"):
            read()


def test_view_is_a_plain_mapping_of_what_was_declared(signal_view):
    config, view = signal_view
    plain = {"scale": "tiny", "distill": {"signal": config["distill"]["signal"]},
             "students": {"block_size": config["students"]["block_size"]}}
    assert dict(view) == {**view} == plain
    assert view | {"extra": 1} == plain | {"extra": 1}
    assert json.loads(json.dumps(view)) == plain
    assert yaml.safe_load(yaml.safe_dump(view)) == plain
    assert yaml.safe_load(yaml.dump(view)) == plain
    for clone in (copy.deepcopy(view), pickle.loads(pickle.dumps(view))):
        assert clone == plain
        with pytest.raises(ConfigError, match="'distill.train'"):
            clone["distill"]["train"]


def test_declared_but_absent_key_is_an_ordinary_miss():
    config = load_config(TINY)
    present = next(iter(config["distill"]["ablations"]["runs"]))
    view = restrict_config(config, ("distill.ablations.runs.nope",), "distill")
    runs = view["distill"]["ablations"]["runs"]
    assert "nope" not in runs and runs.get("nope", 7) == 7
    with pytest.raises(KeyError):
        runs["nope"]
    with pytest.raises(ConfigError, match=f"'distill.ablations.runs.{present}'"):
        runs[present]
    # a section declared whole is the config's own, whatever deeper paths are declared beside it
    view = restrict_config(config, ("distill.pipelines.cross.train", "distill.pipelines"), "x")
    assert view["distill"]["pipelines"] == config["distill"]["pipelines"]


def test_paper_scale_unset_keys_still_raise_through_the_view():
    """What a rule did not pass stays a tide.config.Unset inside the view, and names itself."""
    config = validate_config({"scale": "paper", "distill": {"max_student_len": 512}},
                             complete=False)
    view = restrict_config(config, stage_keys("align", pipeline="cross"), "align")
    assert view["distill"]["max_student_len"] == 512 and view["scale"] == "paper"
    with pytest.raises(ConfigError, match="'distill.pipelines' is not set"):
        view["distill"]["pipelines"]["cross"]


@pytest.fixture
def probe_stage(monkeypatch):
    """Registers a throwaway stage ``probe``, declaring ``world.seed``, running ``reads(config)``."""
    seen = {}

    def install(reads):
        def run(config, args):
            seen["config"] = config
            reads(config)

        monkeypatch.setitem(STAGES, "probe", Stage("probe", "test stage", lambda p: None, run,
                                                   keys=("world.seed",)))
        return seen

    return install


def test_cli_stage_reading_an_undeclared_key_exits_naming_it(probe_stage, capsys):
    probe_stage(lambda config: config["world"]["seed"] + config["tokenizers"]["student"])
    assert main(["probe"]) == 2
    err = capsys.readouterr().err
    assert "tide probe: configuration error" in err
    assert "stage 'probe' reads config key 'tokenizers'" in err


def test_cli_stage_gets_only_its_declared_keys(probe_stage):
    seen = probe_stage(lambda config: config["world"]["seed"])
    assert main(["probe", "--config-json", json.dumps({"world": {"seed": 5}, "seed": 3})]) == 0
    assert seen["config"] == {"scale": "tiny", "world": {"seed": 5}}


# --- every rule passes what its stage declares ------------------------------------------------
def _workflow_config(repo: Path, configfile: str | None) -> dict:
    """The config the workflow validates: config/config.yaml, a config merged over it, or a
    paper-scale config alone (the Snakefile's rule)."""
    tiny = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    if configfile is None:
        return validate_config(tiny)
    given = yaml.safe_load((repo / "config" / configfile).read_text())
    return validate_config(given if given.get("scale") == "paper" else deep_merge(tiny, given))


def _stage_commands(plan: str) -> list[list[str]]:
    """The argv after ``-m tide`` of every job in a dry run's printed shell commands."""
    out = []
    for line in plan.splitlines():
        if " -m tide " in line:
            argv = shlex.split(line.strip().split(" > ")[0])
            out.append(argv[argv.index("-m") + 2:])
    return out


@pytest.mark.parametrize("configfile", [None, "smoke.yaml", "paper.yaml"])
def test_every_rule_passes_what_its_stage_declares(repo, tmp_path, configfile):
    """For every job of the DAG: the rule's --config-json is stage_json of the stage's keys with
    the job's own command-line arguments, as the CLI parses them."""
    extra = ["--configfile", str(repo / "config" / configfile)] if configfile else []
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([f"{BIN}/snakemake", "-s", str(repo / "Snakefile"), "-d", str(tmp_path),
                           "-n", "-p", "--forceall", "--cores", "1", *extra],
                          capture_output=True, text=True, check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = _workflow_config(repo, configfile)
    commands = _stage_commands(proc.stdout + proc.stderr)
    stages = set()
    parser = build_parser()
    for argv in commands:
        args = parser.parse_args(argv)
        stages.add(args.stage)
        assert args.config_json == stage_json(config, args.stage, **vars(args)), argv
    assert {"distill", "align", "eval", "signal", "tables"} <= stages
    if configfile == "paper.yaml":
        assert "prepare" in stages
