"""The two distillation pipelines, named once: every other module reads them from here.

A pipeline's ``name`` (``cross``, ``shared``) is how config, command line, rules, result paths,
alignment, distillation and tables call it; ``letter`` (A, B) is the paper's name for it, used in
table captions and stored in an alignment cache's header; ``teacher`` is the teacher kind it distils
(``teachers.<kind>`` in config, ``teachers/<kind>`` in results); ``tokenizer`` the teacher's tokenizer
directory; ``alignment`` how teacher and student tokens meet:

* ``cross`` (Pipeline A): teacher ``a`` (LLaDA2-MoE, its own tokenizer), byte-aligned ``chunks``,
  chunk-level objectives;
* ``shared`` (Pipeline B): teacher ``b`` (WeDLM, the student's vocabulary), aligned ``positions``,
  token-level objectives.

A distillation batch carries the alignment under the same keys in both pipelines:
``align_student`` and ``align_teacher`` (chunk incidence ``[B, L, C]`` / ``[B, L_T, C]`` bool for
``chunks``; paired indices ``[B, N]`` long, with ``align_valid [B, N]``, for ``positions``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pipeline:
    name: str  # cross | shared
    letter: str  # A | B (the paper's name; an alignment cache's header)
    teacher: str  # teacher kind: a | b
    tokenizer: str  # the teacher's tokenizer directory name
    alignment: str  # chunks | positions

    @property
    def chunk_level(self) -> bool:
        """Whether teacher and student meet in byte-aligned chunks (else aligned positions)."""
        return self.alignment == "chunks"


CROSS = Pipeline("cross", "A", "a", "teacher_a", "chunks")
SHARED = Pipeline("shared", "B", "b", "teacher_b", "positions")
PIPELINES: dict[str, Pipeline] = {p.name: p for p in (CROSS, SHARED)}
TEACHERS: tuple[str, ...] = tuple(p.teacher for p in PIPELINES.values())  # teacher kinds
TEACHER_TOKENIZER = {p.teacher: p.tokenizer for p in PIPELINES.values()}  # kind -> tokenizer dir

# the batch keys of a pipeline's alignment (tide.distill.batches builds them, the trainer reads them)
ALIGN_STUDENT, ALIGN_TEACHER, ALIGN_VALID = "align_student", "align_teacher", "align_valid"


def get_pipeline(name: str) -> Pipeline:
    """The pipeline called ``name``; ``ValueError`` names an unknown one and the known ones."""
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r} (known: {', '.join(PIPELINES)})")
    return PIPELINES[name]


def pipeline_with_letter(letter: str) -> Pipeline:
    """The pipeline the paper calls ``letter`` (A or B), as an alignment cache's header stores it."""
    for p in PIPELINES.values():
        if p.letter == letter:
            return p
    raise ValueError(f"unknown pipeline letter {letter!r} (known: "
                     f"{', '.join(p.letter for p in PIPELINES.values())})")


def pipeline_train(distill: dict, pipeline: str) -> dict:
    """The trainer settings of a distillation run in ``pipeline``: ``distill.train`` (the config's
    ``distill`` section) with the pipeline's own ``train`` overrides over it."""
    return distill["train"] | distill["pipelines"][get_pipeline(pipeline).name]["train"]


def pipeline_tokenizer(pipeline: str) -> str:
    """The tokenizer directory name of ``pipeline``'s teacher."""
    return get_pipeline(pipeline).tokenizer
