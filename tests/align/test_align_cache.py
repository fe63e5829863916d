"""tide.align cache: build once from a distill JSONL, round-trip through the file, summary stats,
and errors that name the file and line."""

from __future__ import annotations

import json

import pytest
import torch
from conversations import ADVERSARIAL, conv
from safetensors.torch import save_file

from tide.align import (
    AlignmentError,
    align_conversation,
    align_positions,
    build_alignment_cache,
    load_alignment_cache,
)

LONG_PROMPT = conv("word " * 200, "short answer")  # prompt alone longer than max_student_len
LENGTHS = {"max_student_len": 96, "max_teacher_len": 110}


def write_jsonl(path, conversations, extra_lines=()):
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(
            json.dumps({"messages": messages, "family": "test"}) + "\n"
            for messages in conversations
        )
        fh.write("\n")  # blank lines are skipped
        fh.writelines(line + "\n" for line in extra_lines)
    return path


@pytest.mark.parametrize("pipeline", ["cross", "shared"])
def test_cache_round_trip(tmp_path, tokenizer_dirs, toks, pipeline):
    rows = ADVERSARIAL + [LONG_PROMPT] + ADVERSARIAL[:3]
    source = write_jsonl(tmp_path / "distill.jsonl", rows)
    teacher = "teacher_a" if pipeline == "cross" else "teacher_b"
    out = tmp_path / "cache" / f"align_{pipeline}.safetensors"
    stats = build_alignment_cache(
        pipeline,
        tokenizer_dirs["student"],
        tokenizer_dirs[teacher],
        source,
        out,
        progress=False,
        **LENGTHS,
    )
    cache = load_alignment_cache(out)
    assert cache.pipeline == pipeline and cache.stats == stats
    assert cache.meta["pipeline"] == {"cross": "A", "shared": "B"}[pipeline]  # the paper's letter
    assert stats["rows"] == len(cache) == len(rows) - 1 and stats["dropped_rows"] == 1
    assert json.loads(out.with_suffix(".stats.json").read_text())["stats"] == stats
    lines = [n + 1 for n in range(len(rows)) if rows[n] is not LONG_PROMPT]
    assert [cache[i]["line"] for i in range(len(cache))] == lines
    for i, line in enumerate(lines):
        messages = rows[line - 1]
        if pipeline == "cross":
            live = align_conversation(toks["student"], toks[teacher], messages, **LENGTHS)
            fields = ("input_ids", "labels", "teacher_input_ids", "chunks")
        else:
            live = align_positions(toks["student"], toks[teacher], messages, **LENGTHS)
            fields = ("input_ids", "labels", "teacher_input_ids", "align_student", "align_teacher")
        assert {f: cache[i][f] for f in fields} == {f: live[f] for f in fields}
    assert cache[-1] == cache[len(cache) - 1]
    if pipeline == "cross":
        assert stats["chunks"] == sum(len(cache[i]["chunks"]) for i in range(len(cache)))
        assert 0.5 < stats["content_coverage"] <= 1 and 0.5 < stats["response_coverage"] <= 1
        assert sum(stats["chunk_kinds"].values()) == stats["chunks"]
        assert all(
            len(cache[i]["teacher_input_ids"]) <= LENGTHS["max_teacher_len"]
            for i in range(len(cache))
        )
    else:
        assert stats["pairs"] == sum(len(cache[i]["align_student"]) for i in range(len(cache)))
        assert 0.5 < stats["paired_fraction"] <= 1 and stats["id_mismatch_pairs"] == 0
    assert all(len(cache[i]["input_ids"]) <= LENGTHS["max_student_len"] for i in range(len(cache)))


@pytest.mark.parametrize(
    "bad_line, match",
    [
        ("{not json", "not valid JSON"),
        ('{"text": "no messages"}', "'messages'"),
        (
            json.dumps(
                {
                    "messages": [
                        {"role": "tool", "content": "x"},
                        {"role": "assistant", "content": "y"},
                    ]
                }
            ),
            "role 'tool'",
        ),
    ],
)
def test_broken_row_names_file_and_line(tmp_path, tokenizer_dirs, bad_line, match):
    source = write_jsonl(tmp_path / "distill.jsonl", ADVERSARIAL[:2], extra_lines=[bad_line])
    with pytest.raises(AlignmentError, match=rf"distill\.jsonl:4: .*{match}"):
        build_alignment_cache(
            "cross",
            tokenizer_dirs["student"],
            tokenizer_dirs["teacher_a"],
            source,
            tmp_path / "a.safetensors",
            progress=False,
            **LENGTHS,
        )
    assert not (tmp_path / "a.safetensors").exists()


def test_bad_inputs(tmp_path, tokenizer_dirs):
    with pytest.raises(ValueError, match="unknown pipeline 'A' \\(known: cross, shared\\)"):
        build_alignment_cache(
            "A",
            tokenizer_dirs["student"],
            tokenizer_dirs["teacher_a"],
            tmp_path / "x",
            tmp_path / "o",
            **LENGTHS,
        )
    with pytest.raises(FileNotFoundError, match="distill split not found"):
        build_alignment_cache(
            "cross",
            tokenizer_dirs["student"],
            tokenizer_dirs["teacher_a"],
            tmp_path / "missing.jsonl",
            tmp_path / "o",
            **LENGTHS,
        )
    source = write_jsonl(tmp_path / "d.jsonl", [LONG_PROMPT])
    with pytest.raises(AlignmentError, match="no usable rows"):
        build_alignment_cache(
            "cross",
            tokenizer_dirs["student"],
            tokenizer_dirs["teacher_a"],
            source,
            tmp_path / "o",
            progress=False,
            **LENGTHS,
        )
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(AlignmentError, match="junk.safetensors"):
        load_alignment_cache(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(AlignmentError, match="not an alignment cache"):
        load_alignment_cache(plain)
    with pytest.raises(FileNotFoundError, match="alignment cache not found"):
        load_alignment_cache(tmp_path / "nothing.safetensors")
