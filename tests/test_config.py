"""Config schema: defaults fill in, every shipped config validates, wrong keys are named."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tide.config import ConfigError, deep_merge, load_config, section_json, validate_config


def test_empty_config_gets_tiny_defaults():
    cfg = validate_config({})
    assert cfg["scale"] == "tiny"
    assert cfg["world"]["seed"] == validate_config({})["world"]["seed"]
    assert set(cfg) >= {"world", "tokenizers", "results", "logs", "work", "seed", "threads"}


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_validate(repo, name):
    base = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    override = yaml.safe_load((repo / "config" / name).read_text())
    validate_config(deep_merge(base, override))


def _paper(repo) -> dict:
    return yaml.safe_load((repo / "config" / "paper.yaml").read_text())


def test_paper_config_stands_alone_and_states_every_key(repo):
    """config/paper.yaml validates on its own (nothing of the tiny config under it) and no schema
    default was needed but for keys the paper scale never reads."""
    from tide.config import stands_alone

    assert stands_alone([repo / "config" / "paper.yaml"])
    assert not stands_alone([repo / "config" / "smoke.yaml"])
    cfg = validate_config(_paper(repo))
    assert cfg["data"]["source"] == "mixture" and cfg["distill"]["train"]["lr"] == 5.0e-5
    assert cfg["distill"]["pipelines"]["shared"]["objective"]["tidal_weight"] == "midrange"


def test_paper_config_task_settings_are_the_papers(repo):
    """Every paper task has its shots and generation length stated, equal to method.md §(g)'s."""
    from tide.eval.run import paper_task_settings

    section = validate_config(_paper(repo))["eval"]
    assert set(section["task_settings"]) == set(section["tasks"])
    for task, settings in section["task_settings"].items():
        assert settings == paper_task_settings(task), task


def _drop(cfg: dict, path: str) -> dict:
    node = cfg
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    del node[last]
    return cfg


@pytest.mark.parametrize("path", ["distill.train.lr", "distill.pipelines.cross.objective.temperature",
                                  "teachers.a.expect", "students.block_size", "data.probe_rows",
                                  "eval.sampler.tide_bd3lm", "seed"])
def test_paper_config_missing_key_is_named(repo, path):
    with pytest.raises(ConfigError, match=rf"missing: .*\b{path.replace('.', '[.]')}\b"):
        validate_config(_drop(_paper(repo), path))


def test_paper_scale_skips_what_it_does_not_read(repo):
    """The world and the from-scratch training keys of a released checkpoint are not required."""
    cfg = validate_config(_paper(repo))
    assert "world" in cfg and cfg["teachers"]["a"]["train"]["max_steps"] == 1000  # filled, unread
    cfg = _paper(repo)
    cfg["teachers"]["a"]["pretrained"] = None  # trained here: its training keys are read now
    with pytest.raises(ConfigError, match=r"teachers[.]a[.]train"):
        validate_config(cfg)


def test_stage_reading_an_unpassed_paper_key_fails_by_name():
    """What a rule hands its stage: keys left to their tiny default raise when read."""
    cfg = validate_config({"scale": "paper", "distill": {"max_student_len": 512}}, complete=False)
    assert cfg["distill"]["max_student_len"] == 512
    with pytest.raises(ConfigError, match="'distill.max_teacher_len' is not set"):
        int(cfg["distill"]["max_teacher_len"])
    with pytest.raises(ConfigError, match="'students' is not set"):
        cfg["students"]["block_size"]
    tiny = validate_config({"distill": {"max_student_len": 512}}, complete=False)
    assert tiny["distill"]["max_teacher_len"] == 160  # tiny scale: the schema default


def test_cli_stage_names_the_unpassed_paper_key(tmp_path):
    """`python -m tide align` at paper scale with no teacher length passed stops, naming it."""
    proc = subprocess.run(
        [sys.executable, "-m", "tide", "align", "--pipeline", "cross", "--rows", str(tmp_path / "r"),
         "--tokenizers", str(tmp_path), "--out", str(tmp_path / "o.safetensors"), "--config-json",
         json.dumps({"scale": "paper", "distill": {"max_student_len": 512}})],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "distill.pipelines" in proc.stderr and "is not set" in proc.stderr


def test_every_schema_key_has_description_and_default(repo):
    def walk(node, where):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{where}.{key} lacks a description"
            assert "default" in sub, f"{where}.{key} lacks a default"
            walk(sub, f"{where}.{key}")

    for path in (repo / "workflow" / "schemas").glob("*.schema.yaml"):
        walk(yaml.safe_load(path.read_text()), path.name)


@pytest.mark.parametrize(
    "bad, key",
    [({"sede": 1}, "sede"), ({"world": {"bogus_knob": 3}}, "bogus_knob"),
     ({"tokenizers": {"student": {"vocab_sise": 10}}}, "vocab_sise"),
     ({"students": {"ar": {"family_repeats": {"mmlux": 2}}}}, "mmlux"),
     ({"teachers": {"a": {"sft": {"enable": True}}}}, "enable")],
)
def test_unknown_key_is_rejected_by_name(bad, key):
    with pytest.raises(ConfigError, match=repr(key)):
        validate_config(bad)


def test_wrong_type_names_the_location():
    with pytest.raises(ConfigError, match="threads"):
        validate_config({"threads": "two"})


def test_unknown_teacher_phase_objective_is_named():
    with pytest.raises(ConfigError, match="objective"):
        validate_config({"teachers": {"b": {"ar": {"objective": "next_tokens"}}}})


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_cli_rejects_wrong_key_with_its_name(tmp_path):
    bad = json.dumps({"world": {"bogus_knob": 1}})
    proc = subprocess.run(
        [sys.executable, "-m", "tide", "world", "--config-json", bad, "--out", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert "bogus_knob" in proc.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written on a config error"


def test_cli_help_lists_stages():
    out = subprocess.run([sys.executable, "-m", "tide", "--help"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0
    for stage in ("world", "tokenizers"):
        assert stage in out.stdout
        sub = subprocess.run([sys.executable, "-m", "tide", stage, "--help"],
                             capture_output=True, text=True, check=False)
        assert sub.returncode == 0 and "--out" in sub.stdout


def test_section_json_nests_dotted_paths_and_names_a_missing_key():
    config = load_config(None)
    picked = json.loads(section_json(config, "students.block_size", "teachers.a.train", "seed"))
    assert picked == {"students": {"block_size": config["students"]["block_size"]},
                      "teachers": {"a": {"train": config["teachers"]["a"]["train"]}},
                      "seed": config["seed"]}
    # what a rule passes round-trips: the CLI's merge over the defaults gives the same values
    assert load_config(None, picked)["teachers"]["a"]["train"] == config["teachers"]["a"]["train"]
    with pytest.raises(ConfigError, match=r"'students\.nope'"):
        section_json(config, "students.nope.lr")


def test_family_repeats_can_name_every_corpus_family(repo):
    """The mixture weights take every ``family`` a corpus row can carry: the pretrain document
    kinds (quiz included) and the 8 task families of the chat splits."""
    from tide.world.config import FAMILIES, PRETRAIN_KINDS

    schema = yaml.safe_load((repo / "workflow" / "schemas" / "repeats.schema.yaml").read_text())
    assert set(schema["propertyNames"]["enum"]) == set(PRETRAIN_KINDS) | set(FAMILIES)
    validate_config({"students": {"ar": {"family_repeats": {"quiz": 2, "facts": 2}}}})


@pytest.mark.parametrize("where", [{"teachers": {"a": {"splits": ["sft", "distill_unseen"]}}},
                                   {"students": {"sft": {"splits": ["signal_probe"]}}}])
def test_no_model_may_train_on_the_unseen_splits(where):
    """distill_unseen (the distillation data) and signal_probe stay unseen: no training stage
    accepts them as a split."""
    with pytest.raises(ConfigError, match="splits"):
        validate_config(where)


def test_fill_section_fills_one_section_and_keeps_paper_unset_keys():
    """A section through its own schema file: defaults filled (the input untouched), a bad key
    named with the section's path; a paper-scale key the rule did not pass stays an Unset that
    fails by name when read, and an Unset section fails at once."""
    from tide.config import Unset, fill_section, section_defaults

    given = {"lr": 0.5}
    filled = fill_section("train.schema.yaml", given)
    assert given == {"lr": 0.5} and filled == section_defaults("train.schema.yaml") | given
    with pytest.raises(ConfigError, match=r"invalid value at distill\.train\.lr"):
        fill_section("train.schema.yaml", {"lr": 0}, "distill.train")
    cfg = validate_config({"scale": "paper", "distill": {"train": {"lr": 0.5}}}, complete=False)
    train = fill_section("train.schema.yaml", cfg["distill"]["train"])
    assert train["lr"] == 0.5 and isinstance(train["max_steps"], Unset)
    with pytest.raises(ConfigError, match="'distill.train.max_steps' is not set"):
        int(train["max_steps"])
    with pytest.raises(ConfigError, match="'students' is not set"):
        fill_section("train.schema.yaml", cfg["students"])
