"""Worker of test_multiprocess.py: distillation runs through the real stage function
(:func:`tide.distill.stages.distill`), in one process or as one of several (``torchrun``).

    python distill_step.py SPEC.json OUT_DIR GA            # one process, GA accumulation steps
    torchrun --standalone --nproc_per_node 2 distill_step.py SPEC.json OUT_DIR 1

SPEC.json: ``{"runs": [{"pipeline", "variant", "init", "teacher", "cache", "student_tok",
"teacher_tok"}], "train": {...TrainConfig keys...}, "block_size": int}``. Each run writes
``OUT_DIR/<pipeline>/model`` (the trained student).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)


def main(spec_path: str, out: str, ga: str) -> None:
    from tide.config import fill_section
    from tide.distill.objectives import objective
    from tide.distill.stages import distill

    spec, out = json.loads(Path(spec_path).read_text()), Path(out)
    for run in spec["runs"]:
        accumulate = {"gradient_accumulation_steps": int(ga)} if int(ga) > 1 else {}  # 1: the default
        section = fill_section("distill.schema.yaml", {"train": {**spec["train"], **accumulate}})
        distill(run["pipeline"], objective(run["pipeline"], run["variant"], {}), 0, section,
                spec["block_size"], init_dir=Path(run["init"]), teacher_dir=Path(run["teacher"]),
                cache_path=Path(run["cache"]), student_tok=Path(run["student_tok"]),
                teacher_tok=Path(run["teacher_tok"]), work_dir=out / run["pipeline"] / "work",
                out_dir=out / run["pipeline"] / "model")


if __name__ == "__main__":
    main(*sys.argv[1:4])
