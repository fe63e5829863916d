"""The workflow: the DAG lists from a dry run, and the smoke scale builds the world and tokenizers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

BIN = str(Path(sys.executable).parent)


def snakemake(repo: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [f"{BIN}/snakemake", "-s", str(repo / "Snakefile"), "-d", str(workdir), *args],
        capture_output=True, text=True, check=False, env=env,
    )


@pytest.mark.parametrize("configfile", [None, "smoke.yaml"])
def test_dry_run_lists_the_dag(repo, tmp_path, configfile):
    extra = ["--configfile", str(repo / "config" / configfile)] if configfile else []
    proc = snakemake(repo, tmp_path, "-n", "--cores", "2", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    for rule in ("make_world", "train_tokenizers", "train_teacher", "train_ar", "convert_a2d",
                 "sft_bd3lm", "sanity_check"):
        assert counts.get(rule), rule
    assert "prepare_teacher" not in counts and "make_data" not in counts


# The paper DAG: 2 pipelines x 4 variants x 1 seed + 8 ablations, 20 models x 8 tasks, the student
# and both teachers profiled (prepared checkpoints, no random-weight shapes); nothing of
# the tiny world (no world, no trained tokenizer or model, no sanity check on world tasks)
PAPER_JOBS = {"make_data": 1, "train_tokenizers": 1, "prepare_teacher": 2, "prepare_student": 2,
              "align_pipeline": 4, "distill_student": 8, "ablate_student": 8, "loss_curve": 8,
              "teacher_signal": 20, "eval_task": 160, "profile_model": 3, "tables": 1, "all": 1}


def test_paper_dry_run_has_no_tiny_world_job(repo, tmp_path):
    proc = snakemake(repo, tmp_path, "-n", "--cores", "2",
                     "--configfile", str(repo / "config" / "paper.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert job_counts(proc.stdout) == PAPER_JOBS
    assert "results/world" not in proc.stdout and "tiny_mmlu" not in proc.stdout
    from tide.eval.run import PAPER_TASKS  # the paper's lm-eval tasks, not the tiny world's

    for spec in PAPER_TASKS.values():
        assert f"results/eval/students/bd3lm/{spec.task}/{spec.task}.json" in proc.stdout


def test_paper_dry_run_stops_on_a_missing_key(repo, tmp_path):
    """A paper config without one of its keys does not plan: the error names the key."""
    cfg = (repo / "config" / "paper.yaml").read_text().replace("  max_student_len: 512", "")
    bad = tmp_path / "paper.yaml"
    bad.write_text(cfg)
    proc = snakemake(repo, tmp_path, "-n", "--cores", "1", "--configfile", str(bad))
    assert proc.returncode != 0
    assert "missing: distill.max_student_len" in proc.stdout + proc.stderr


def _job_resources(plan: str) -> dict[str, set[str]]:
    """{rule: the set of its jobs' `resources:` lines} of a dry run's job listing."""
    out: dict[str, set[str]] = {}
    rule = None
    for line in plan.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            out.setdefault(rule, set()).add(line.strip())
    return out


@pytest.mark.parametrize("profile", ["slurm", "default"])
def test_profiles_plan_the_paper_dag(repo, tmp_path, profile):
    """`--profile profiles/slurm` plans the paper DAG with the SLURM executor (no cluster is needed
    for -n): GPUs, memory and wall time per rule; the local profile plans it on this machine."""
    proc = snakemake(repo, tmp_path, "-n", "--profile", str(repo / "profiles" / profile),
                     "--configfile", str(repo / "config" / "paper.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    resources = _job_resources(proc.stdout + proc.stderr)
    assert "distill_student" in resources and "eval_task" in resources
    if profile == "slurm":
        assert all("gpu=8" in r and "runtime=1440" in r for r in resources["distill_student"])
        assert all("gpu=1" in r for r in resources["eval_task"])
        assert all("gpu=1" in r for r in resources["profile_model"])  # one GPU to itself, §(h)
        assert all("gpu=" not in r for r in resources["align_pipeline"])  # CPU, once, before them
        plan = proc.stdout + proc.stderr  # 8 GPUs: one accelerate (DDP) process each, bf16
        assert plan.count("accelerate launch --config_file config/accelerate/ddp.yaml "
                          "--num_processes 8 --mixed_precision bf16 -m tide distill") == 16
    else:
        assert all("gpu=" not in r for rs in resources.values() for r in rs)


def test_wrong_config_key_stops_the_workflow(repo, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("world:\n  not_a_knob: 1\n")
    proc = snakemake(repo, tmp_path, "-n", "--cores", "1", "--configfile", str(bad))
    assert proc.returncode != 0
    assert "not_a_knob" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_smoke_runs_the_dag(repo, tmp_path):
    """The whole DAG at smoke scale: world, tokenizers, both teachers, AR -> a2d -> BD3LM students."""
    from tide.models.loading import load_model

    proc = snakemake(repo, tmp_path, "--cores", "2", "--configfile",
                     str(repo / "config" / "smoke.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results"
    kinds = {"teachers/a": "llada2_moe", "teachers/b": "wedlm", "students/ar": "qwen3",
             "students/a2d": "a2d-qwen3", "students/bd3lm": "a2d-qwen3"}
    for where, model_type in kinds.items():
        assert load_model(results / where).config.model_type == model_type
    for where in ("teachers/a", "teachers/b"):  # smoke.yaml: shifted teachers
        assert load_model(results / where).config.right_shift_logits is True
    for where in ("teachers/a", "students/bd3lm"):
        assert (results / where / "loss.csv").read_text().count("\n") >= 2
    # resumable state is kept in work/, outside the declared outputs; teachers have three phases,
    # each starting from the weights the one before wrote
    assert (tmp_path / "work" / "students" / "bd3lm" / "checkpoint-4").is_dir()
    teacher_work = tmp_path / "work" / "teachers" / "a"
    assert (teacher_work / "ar" / "checkpoint-2").is_dir()
    assert (teacher_work / "diffusion" / "checkpoint-4").is_dir()
    assert (teacher_work / "sft" / "checkpoint-2").is_dir()
    assert (teacher_work / "diffusion-final" / "model.safetensors").is_file()
    ar_config = json.loads((teacher_work / "ar-final" / "config.json").read_text())
    assert not ar_config.get("right_shift_logits", False)  # the AR phase is a plain causal LM
    manifest = json.loads((results / "world" / "manifest.json").read_text())
    assert manifest["files"], "the manifest lists the world's files"
    for name in ("student", "teacher_b", "teacher_a"):
        tok = AutoTokenizer.from_pretrained(results / "tokenizers" / name)
        text = "Q: 3 + 4 = ?"
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    record = json.loads((results / "tokenizers" / "provenance.json").read_text())
    assert {"config", "versions", "git_sha"} <= set(record)
    # a second run has nothing to do
    again = snakemake(repo, tmp_path, "--cores", "2", "--configfile",
                      str(repo / "config" / "smoke.yaml"), "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # a rule re-runs when a key its stage reads changes, not when another stage's key does:
    # a new BD3LM SFT learning rate re-runs sft_bd3lm (and what depends on it), not the teachers
    import yaml

    smoke = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    smoke["students"]["sft"]["train"]["lr"] = 1.234e-4  # not the smoke value
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(smoke))
    plan = snakemake(repo, tmp_path, "--cores", "2", "--configfile", str(edited), "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = plan.stdout + plan.stderr
    assert "rule sft_bd3lm:" in jobs
    for untouched in ("train_teacher", "train_ar", "convert_a2d", "make_world"):
        assert f"rule {untouched}:" not in jobs, untouched
    # toggling one ablation re-runs that ablation (and the tables), not the alignment or the
    # other distillation jobs
    smoke = yaml.safe_load((repo / "config" / "smoke.yaml").read_text())
    smoke["distill"]["ablations"]["select"] = ["compdemo_off", "demo_ratio_03"]
    edited.write_text(yaml.safe_dump(smoke))
    plan = snakemake(repo, tmp_path, "--cores", "2", "--configfile", str(edited), "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert job_counts(plan.stdout + plan.stderr) == {
        "ablate_student": 1, "sanity_check": 1, "eval_task": 2, "teacher_signal": 1, "tables": 1,
        "all": 1,
    }  # demo_ratio_03 trained, evaluated on the 2 smoke tasks, its signal; nothing else re-runs
    _check_tables_report_and_rebuild(repo, tmp_path)


def job_counts(plan: str) -> dict[str, int]:
    """The "Job stats" table of a dry run as {rule: count}."""
    table = plan.split("Job stats:", 1)[1].split("total", 1)[0]
    rows = [line.split() for line in table.strip().splitlines()[2:]]
    return {name: int(count) for name, count in rows}


def _check_tables_report_and_rebuild(repo: Path, workdir: Path) -> None:
    """The smoke run's tables are filled; the report is written; the tables rebuild byte for byte
    from the evaluation results, loss curves and teacher signals alone (what `dvc pull evaluation`
    brings)."""
    import pandas as pd

    from tide.tables import FIGURES, TABLES

    smoke = ["--configfile", str(repo / "config" / "smoke.yaml")]
    tables = workdir / "results" / "tables"
    main = pd.read_csv(tables / "main_results.csv")
    assert len(main) == 12 * 4  # 12 systems x (2 smoke tasks, avg, avg without mmlu/mmlu_pro)
    assert main["mean"].notna().all() and main["delta_vs_bd3lm"].notna().all()
    assert "| Benchmark | AR | BD3LM | B: KL |" in (tables / "main_results.md").read_text()
    signal = pd.read_csv(tables / "teacher_signal.csv")
    # per pipeline: teacher, BD3LM, 4 variants (+ compdemo_off in B) x 3 measures, + 4 lead rows
    assert len(signal) == (6 * 3 + 4) + (7 * 3 + 4) and signal["mean"].notna().all()
    report = snakemake(repo, workdir, *smoke, "--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (workdir / "results" / "report.html").read_text()
    assert "main_results.md" in html and "delta_vs_bd3lm.png" in html
    assert "n_boot" in html  # the config is in the report

    pulled = workdir.parent / f"{workdir.name}-pulled"
    for part in ("eval", "curves", "signal", "profile"):
        shutil.copytree(workdir / "results" / part, pulled / "results" / part)
    rebuild = snakemake(repo, pulled, *smoke, "--cores", "1", "--allowed-rules", "tables",
                        "--", "tables")
    assert rebuild.returncode == 0, rebuild.stderr[-3000:]
    for name in TABLES:
        for ext in ("csv", "md"):
            path = f"results/tables/{name}.{ext}"
            assert (pulled / path).read_bytes() == (workdir / path).read_bytes(), path
    for name in FIGURES:
        path = f"results/figures/{name}.png"
        assert (pulled / path).read_bytes() == (workdir / path).read_bytes(), path
    assert not (pulled / "results" / "distill").exists()  # nothing was trained
