"""Distillation batches: the collator against a slow loop reference on random rows, chunk matrices and
paired positions consistent with real alignment caches, and errors that name the broken row."""

from __future__ import annotations

import random

import pytest
import torch
from distill_world import WORDS

from tide.distill.batches import DistillCollator, DistillDataError, DistillDataset

torch.set_num_threads(1)

S_PAD, S_EOS, T_PAD, T_EOS = 90, 91, 70, 71


# ----------------------------------------------------------------------------- random rows
def random_row(rng: random.Random, pipeline: str, line: int) -> dict:
    """A well-formed row: prompt labels -100, then supervised ids; chunks or pairs inside both sides."""
    n_s, n_t = rng.randint(3, 29), rng.randint(2, 37)
    ids = [rng.randrange(80) for _ in range(n_s)]
    n_prompt = rng.randint(0, n_s - 1)
    row = {
        "line": line,
        "input_ids": ids,
        "labels": [-100] * n_prompt + ids[n_prompt:],
        "teacher_input_ids": [rng.randrange(60) for _ in range(n_t)],
    }
    if pipeline == "cross":
        chunks, s, t = [], rng.randint(0, 2), rng.randint(0, 2)
        while s < n_s and t < n_t and rng.random() < 0.85:
            s1, t1 = min(n_s, s + rng.randint(1, 3)), min(n_t, t + rng.randint(1, 3))
            chunks.append((t, t1, s, s1))
            s, t = s1 + rng.randint(0, 1), t1 + rng.randint(0, 1)
        row["chunks"] = chunks
    else:
        n = rng.randint(0, min(n_s, n_t))
        row["align_student"] = sorted(rng.sample(range(n_s), n))
        row["align_teacher"] = sorted(rng.sample(range(n_t), n))
    return row


def reference_batch(rows: list[dict], pipeline: str, block: int) -> dict[str, torch.Tensor]:
    """Slow loop version of the collator (method.md §b student padding, §d/§f teacher padding)."""
    stud = []
    for row in rows:
        ids, labels = list(row["input_ids"]), list(row["labels"])
        while len(ids) % block:
            ids.append(S_EOS)
            labels.append(S_EOS)
        stud.append((ids, labels))
    width = max(len(ids) for ids, _ in stud)
    while width % block:
        width += 1
    teach = []
    for row in rows:
        ids, attn = list(row["teacher_input_ids"]), [1] * len(row["teacher_input_ids"])
        while pipeline == "shared" and len(ids) % block:
            ids.append(T_EOS)
            attn.append(1)
        teach.append((ids, attn))
    t_width = max(len(ids) for ids, _ in teach)
    out = {
        "input_ids": [[S_PAD] * width for _ in rows],
        "labels": [[-100] * width for _ in rows],
        "teacher_ids": [[T_PAD] * t_width for _ in rows],
        "teacher_attention": [[0] * t_width for _ in rows],
    }
    for b in range(len(rows)):
        for i, (x, y) in enumerate(zip(*stud[b])):
            out["input_ids"][b][i], out["labels"][b][i] = x, y
        for k, (x, a) in enumerate(zip(*teach[b])):
            out["teacher_ids"][b][k], out["teacher_attention"][b][k] = x, a
    batch = {k: torch.tensor(v) for k, v in out.items()}
    if pipeline == "cross":
        n_chunks = max([len(r["chunks"]) for r in rows] + [1])
        a_s = torch.zeros(len(rows), width, n_chunks, dtype=torch.bool)
        a_t = torch.zeros(len(rows), t_width, n_chunks, dtype=torch.bool)
        for b, row in enumerate(rows):
            for c, (t0, t1, s0, s1) in enumerate(row["chunks"]):
                for i in range(s0, s1):
                    a_s[b, i, c] = True
                for k in range(t0, t1):
                    a_t[b, k, c] = True
        batch |= {"align_student": a_s, "align_teacher": a_t}
    else:
        n = max([len(r["align_student"]) for r in rows] + [1])
        a_s = torch.zeros(len(rows), n, dtype=torch.long)
        a_t = torch.zeros(len(rows), n, dtype=torch.long)
        valid = torch.zeros(len(rows), n, dtype=torch.bool)
        for b, row in enumerate(rows):
            for j, (i, k) in enumerate(zip(row["align_student"], row["align_teacher"])):
                a_s[b, j], a_t[b, j], valid[b, j] = i, k, True
        batch |= {"align_student": a_s, "align_teacher": a_t, "align_valid": valid}
    return batch


@pytest.mark.parametrize("pipeline", ["cross", "shared"])
@pytest.mark.parametrize("block", [1, 4, 8])
def test_collator_matches_slow_reference(pipeline, block):
    rng = random.Random(block * 7 + len(pipeline))
    collate = DistillCollator(pipeline, S_PAD, S_EOS, T_PAD, block, teacher_eos_id=T_EOS)
    for trial in range(20):
        rows = [random_row(rng, pipeline, line) for line in range(rng.randint(1, 5))]
        if trial == 0 and pipeline == "shared":
            rows[0] |= {"align_student": [], "align_teacher": []}  # a row without pairs
        got, want = collate(rows), reference_batch(rows, pipeline, block)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].dtype == want[key].dtype, key
            assert torch.equal(got[key], want[key]), (key, trial)
        assert got["input_ids"].shape[1] % block == 0
        if pipeline == "shared":
            assert got["teacher_ids"].shape[1] % block == 0


def test_teacher_eos_defaults_to_pad_and_pipeline_names():
    rng = random.Random(3)
    rows = [random_row(rng, "shared", n) for n in range(4)]
    by_name = DistillCollator("shared", S_PAD, S_EOS, T_PAD, 4)(rows)
    want = reference_batch(rows, "shared", 4)
    filled = torch.where(want["teacher_ids"] == T_EOS, T_PAD, want["teacher_ids"])
    # no random teacher id is T_EOS (ids < 60), so every T_EOS is block fill
    assert torch.equal(by_name["teacher_ids"], filled)
    assert torch.equal(by_name["teacher_attention"], want["teacher_attention"])
    cross = DistillCollator("cross", S_PAD, S_EOS, T_PAD, 4)([random_row(rng, "cross", 0)])
    assert cross["align_student"].dim() == 3 and "align_valid" not in cross
    for other in ("C", "A", "b"):  # one vocabulary: the letters and teacher kinds are not names
        with pytest.raises(ValueError, match=f"unknown pipeline '{other}' \\(known: cross, shared\\)"):
            DistillCollator(other, S_PAD, S_EOS, T_PAD, 4)


# ----------------------------------------------------------------------------- malformed rows
BROKEN = [
    ("cross", lambda r: r.pop("chunks"), "missing key.*chunks"),
    ("cross", lambda r: r.update(chunks=[(0, 1, 0, 99)]), "chunk 0 .*outside"),
    ("cross", lambda r: r.update(chunks=[(2, 2, 0, 1)]), "chunk 0 .*empty"),
    ("cross", lambda r: r.update(labels=r["labels"][:-1]), "labels for"),
    ("shared", lambda r: r.update(align_teacher=r["align_teacher"] + [0]), "align_student vs"),
    ("shared", lambda r: r.update(align_student=[99], align_teacher=[0]), "pair 0 .*outside"),
    ("shared", lambda r: r.update(teacher_input_ids=[]), "empty"),
]


@pytest.mark.parametrize("pipeline,damage,message", BROKEN)
def test_malformed_row_is_named(pipeline, damage, message):
    rng = random.Random(5)
    rows = [random_row(rng, pipeline, line) for line in (11, 12, 13)]
    damage(rows[1])
    with pytest.raises(DistillDataError, match=message) as err:
        DistillCollator(pipeline, S_PAD, S_EOS, T_PAD, 4, teacher_eos_id=T_EOS)(rows)
    assert "row 1 of the batch (line 12 of the distill split)" in str(err.value)


# ----------------------------------------------------------------------------- real caches
def _conversations(n: int = 10) -> list[list[dict]]:
    rng = random.Random(0)

    def text(k: int) -> str:
        words = " ".join(rng.choice(WORDS) for _ in range(k))
        return f"{words.capitalize()} {rng.randrange(10**5)}, café x²."

    return [
        ([{"role": "system", "content": "Be brief."}] if i % 3 == 0 else [])
        + [{"role": "user", "content": text(5)}, {"role": "assistant", "content": text(12)}]
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def caches_world(tmp_path_factory, build_alignment_world):
    """Tokenizers and both alignment caches of a few conversations (rows of other lengths than
    the trainer tests' ``world``)."""
    out = tmp_path_factory.mktemp("distill_data")
    return build_alignment_world(out, _conversations(), repeat=4, max_student_len=48,
                                 max_teacher_len=60)


def _collator(toks, pipeline, block=8):
    teacher = toks["teacher_a" if pipeline == "cross" else "teacher_b"]
    s = toks["student"]
    return DistillCollator(pipeline, s.pad_token_id, s.eos_token_id, teacher.pad_token_id, block,
                           teacher_eos_id=teacher.eos_token_id)


def test_dataset_is_a_view_of_the_cache(caches_world):
    _, caches = caches_world
    for pipeline in ("cross", "shared"):
        ds = DistillDataset(caches[pipeline])
        assert ds.pipeline == pipeline and len(ds) == len(caches[pipeline]) > 0
        assert [ds[i] for i in range(len(ds))] == [caches[pipeline][i] for i in range(len(ds))]
    assert DistillDataset([{"input_ids": [1]}]).pipeline is None


def test_chunk_matrices_cover_identical_text(caches_world):
    toks, caches = caches_world
    ds = DistillDataset(caches["cross"])
    rows = [ds[i] for i in range(len(ds))]
    batch = _collator(toks, "cross")(rows)
    a_s, a_t = batch["align_student"], batch["align_teacher"]
    assert a_s.shape[:2] == batch["input_ids"].shape and a_t.shape[:2] == batch["teacher_ids"].shape
    assert a_s.shape[2] == max(len(r["chunks"]) for r in rows)
    assert not batch["teacher_attention"].bool().logical_not().logical_and(a_t.any(-1)).any()
    truncated = 0
    for b, row in enumerate(rows):
        n_c = len(row["chunks"])
        assert not a_s[b, :, n_c:].any() and not a_t[b, :, n_c:].any()  # padded chunk columns
        truncated += len(row["input_ids"]) == 48
        for c, (t0, t1, s0, s1) in enumerate(row["chunks"]):
            assert a_s[b, :, c].nonzero().flatten().tolist() == list(range(s0, s1))
            assert a_t[b, :, c].nonzero().flatten().tolist() == list(range(t0, t1))
            s_text = toks["student"].decode(batch["input_ids"][b][a_s[b, :, c]])
            t_text = toks["teacher_a"].decode(batch["teacher_ids"][b][a_t[b, :, c]])
            assert s_text == t_text, (b, c)
        # chunks are disjoint on both sides
        assert a_s[b].sum(-1).max() <= 1 and a_t[b].sum(-1).max() <= 1
    assert truncated > 0, "some student rows should be cut at max_student_len"


def test_positions_pair_equal_ids_and_valid_mask(caches_world):
    toks, caches = caches_world
    ds = DistillDataset(caches["shared"])
    rows = [ds[i] for i in range(len(ds))]
    batch = _collator(toks, "shared")(rows)
    a_s, a_t, valid = batch["align_student"], batch["align_teacher"], batch["align_valid"]
    assert a_s.dtype == a_t.dtype == torch.long and valid.dtype == torch.bool
    counts = [len(r["align_student"]) for r in rows]
    assert valid.sum(1).tolist() == counts and valid.shape[1] == max(counts)
    for b in range(len(rows)):
        assert valid[b].tolist() == [n < counts[b] for n in range(valid.shape[1])]
        assert not a_s[b][~valid[b]].any() and not a_t[b][~valid[b]].any()  # padding index 0
    s_ids = batch["input_ids"].gather(1, a_s)[valid]
    t_ids = batch["teacher_ids"].gather(1, a_t)[valid]
    assert torch.equal(s_ids, t_ids)
    assert batch["labels"].gather(1, a_s)[valid].ne(-100).all()  # assistant content only
    assert batch["teacher_attention"].gather(1, a_t)[valid].eq(1).all()
