"""Check that a code change leaves the tiny outputs unchanged: short runs of every training stage
(AR, a2d, BD3LM SFT, both teachers with all their phases, three distillation steps of every variant
of both pipelines and of an ablation in each), the tokenizers, both alignment caches and the teacher
signal of the BD3LM student in each pipeline, made by a baseline checkout and by this one from the
same inputs, must give identical weights, loss curves, caches, measures and tokenizer files.

    git worktree add /tmp/base <baseline sha>
    python probes/same_weights.py /tmp/base OUT_DIR        (after `dvc pull`; needs results/align)

A stage run from a tree imports that tree's `tide` (``python -m`` puts the working directory first).
Exit status 1 and the differing files named when anything differs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parents[1]
R = HERE / "results"
SHORT = {"max_steps": 3, "save_steps": 100, "logging_steps": 1, "curriculum": []}
DISTILL = {"distill": {"train": {"epochs": None, "max_steps": 3, "save_steps": 100,
                                 "logging_steps": 1}}}


def teacher(kind: str) -> dict:
    return {"teachers": {kind: {"ar": {"train": SHORT}, "train": SHORT, "sft": {"train": SHORT}}}}


def stages(out: Path) -> list[tuple[str, list[str], str]]:
    """(name, arguments of `python -m tide`, the file or directory to compare)."""
    tok = R / "tokenizers"
    common = ["--config", "config/config.yaml", "--threads", "1"]

    def distill(pipeline, variant, kind, ablation=None):
        name = f"distill-{pipeline}-{ablation or variant}"
        more = ["--ablation", ablation] if ablation else []
        return [name, ["distill", *common, "--config-json", json.dumps(DISTILL), *more,
                "--pipeline", pipeline, "--variant", variant, "--seed", "0",
                "--init", str(R / "students/bd3lm"), "--teacher", str(R / "teachers" / kind),
                "--cache", str(R / "align" / pipeline / "distill_unseen.safetensors"),
                "--tokenizers", str(tok), "--work", str(out / f"w-{name}"),
                "--out", str(out / name)], name]

    def align(pipeline):
        return [f"align-{pipeline}", ["align", *common, "--pipeline", pipeline, "--rows",
                str(R / "world/corpus/signal_probe.jsonl"), "--tokenizers", str(tok),
                "--out", str(out / f"align-{pipeline}" / "probe.safetensors")], f"align-{pipeline}"]

    def signal(pipeline, kind):
        return [f"signal-{pipeline}", ["signal", *common, "--pipeline", pipeline,
                "--model", str(R / "students/bd3lm"), "--teacher", str(R / "teachers" / kind),
                "--cache", str(R / "align" / pipeline / "signal_probe.safetensors"),
                "--tokenizers", str(tok), "--out", str(out / f"signal-{pipeline}.json")],
                f"signal-{pipeline}.json"]

    return [
        ["tokenizers", ["tokenizers", *common, "--corpus", str(R / "world/corpus"),
                        "--out", str(out / "tok")], "tok"],
        ["ar", ["train-ar", *common, "--config-json", json.dumps({"students": {"ar": {"train": SHORT}}}),
                "--world", str(R / "world"), "--tokenizer", str(tok / "student"),
                "--work", str(out / "w-ar"), "--out", str(out / "ar")], "ar"],
        ["a2d", ["a2d", *common, "--ar", str(out / "ar"), "--tokenizer", str(tok / "student"),
                 "--out", str(out / "a2d")], "a2d"],
        ["sft", ["sft-bd3lm", *common, "--config-json",
                 json.dumps({"students": {"sft": {"train": SHORT}}}), "--init", str(out / "a2d"),
                 "--world", str(R / "world"), "--tokenizer", str(tok / "student"),
                 "--work", str(out / "w-sft"), "--out", str(out / "sft")], "sft"],
        *[[f"teacher-{k}", ["train-teacher", *common, "--kind", k, "--config-json",
                            json.dumps(teacher(k)), "--world", str(R / "world"),
                            "--tokenizer", str(tok / f"teacher_{k}"), "--work", str(out / f"w-t{k}"),
                            "--out", str(out / f"teacher-{k}")], f"teacher-{k}"] for k in "ab"],
        *[distill("shared", v, "b") for v in ("kl", "tide_shared", "tide_cross", "ce_only")],
        *[distill("cross", v, "a") for v in ("calm", "tide_cross", "tide_shared", "ce_only")],
        distill("shared", "tide_shared", "b", "demo_ratio_03"),  # an ablation: overrides applied
        distill("cross", "tide_cross", "a", "calm_temperature_2"),
        align("cross"), align("shared"), signal("cross", "a"), signal("shared", "b"),
    ]


def run(tree: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, args, _ in stages(out):
        with open(out / f"{name}.log", "w") as log:
            subprocess.run([sys.executable, "-m", "tide", *args], cwd=tree, check=True,
                           stdout=log, stderr=subprocess.STDOUT)


def _metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata() or {}


def differences(a: Path, b: Path) -> list[str]:
    """Files of ``a`` (a directory or one file) that differ in ``b``: tensors of safetensors files,
    JSON results less their ``provenance`` entry, bytes of the rest (the provenance records, which
    name their git sha and paths, are left out)."""
    out = []
    files = [a] if a.is_file() else sorted(p for p in a.rglob("*") if p.is_file())
    for path in files:
        other = b / path.relative_to(a) if a.is_dir() else b
        name = path.relative_to(a) if a.is_dir() else path.name
        if path.name in ("provenance.json", "run.json") or path.suffix == ".log":
            continue
        if not other.is_file():
            out.append(f"{name}: missing")
        elif path.suffix == ".safetensors":
            x, y = load_file(path), load_file(other)
            if x.keys() != y.keys() or any(not torch.equal(x[k], y[k]) for k in x):
                out.append(f"{name}: tensors differ")
            elif _metadata(path) != _metadata(other):
                out.append(f"{name}: header metadata differs")
        elif a.is_file() and path.suffix == ".json":
            x, y = json.loads(path.read_text()), json.loads(other.read_text())
            x.pop("provenance", None), y.pop("provenance", None)
            if x != y:
                out.append(f"{name}: measures differ")
        elif path.read_bytes() != other.read_bytes():
            out.append(f"{name}: bytes differ")
    return out


def main() -> int:
    base, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: run(*job), [(base, out / "base"), (HERE, out / "head")]))
    diff = []
    for name, _, target in stages(out / "base"):
        found = differences(out / "base" / target, out / "head" / target)
        print(f"{name}: {'identical' if not found else 'DIFFERS'}")
        diff += found
    print("\n".join(diff) or "every output identical (weights, loss curves, tokenizer files)")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
