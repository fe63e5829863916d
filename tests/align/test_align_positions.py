"""tide.align Pipeline B: paired positions of the student and teacher_b templates (shared vocabulary),
against a k-th-with-k-th reference built from HF character offsets and the templates' structure."""

from __future__ import annotations

import pytest
from conversations import ADVERSARIAL, conv

from tide.align import align_positions, token_bytes
from tide.tokenization import render_chat

HEADERS = {
    "student": "<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "teacher_b": "<|im_start|>assistant\n",
}


def content_starts(tok, role, messages) -> list[int]:
    """Character offsets of the assistant contents (from the template's known headers)."""
    return [
        len(render_chat(tok, messages[:k]) + HEADERS[role])
        for k, m in enumerate(messages)
        if m["role"] == "assistant" and m["content"].strip()
    ]


def reference_pairs(toks, messages):
    """k-th with k-th pairing of the tokens fully inside each assistant content (character offsets)."""
    inner = {}
    for role in ("student", "teacher_b"):
        tok = toks[role]
        enc = tok(render_chat(tok, messages), add_special_tokens=False, return_offsets_mapping=True)
        contents = [
            m["content"] for m in messages if m["role"] == "assistant" and m["content"].strip()
        ]
        spans = [
            [
                i
                for i, (a, b) in enumerate(enc["offset_mapping"])
                if a >= start and b <= start + len(c) and b > a
            ]
            for start, c in zip(content_starts(tok, role, messages), contents)
        ]
        inner[role] = (enc["input_ids"], spans)
    (s_ids, s_spans), (t_ids, t_spans) = inner["student"], inner["teacher_b"]
    pairs = [p for s, t in zip(s_spans, t_spans) for p in zip(s, t)]
    return s_ids, t_ids, pairs


def relative_offsets(tok, role, messages, ids, positions):
    """(assistant message number, byte start relative to its content) of each token position."""
    text = render_chat(tok, messages)
    starts = [len(text[:c].encode()) for c in content_starts(tok, role, messages)]
    pieces = token_bytes(tok, ids)
    out = []
    for i in positions:
        at = sum(map(len, pieces[:i]))
        k = max(n for n, st in enumerate(starts) if st <= at)
        out.append((k, at - starts[k], len(pieces[i])))
    return out


@pytest.mark.parametrize("index", range(len(ADVERSARIAL)))
def test_pairs_map_equal_ids_and_match_the_reference(toks, index):
    messages = ADVERSARIAL[index]
    s_tok, t_tok = toks["student"], toks["teacher_b"]
    ex = align_positions(s_tok, t_tok, messages, max_student_len=10_000)
    s_ids, t_ids = ex["input_ids"], ex["teacher_input_ids"]
    pairs = list(zip(ex["align_student"], ex["align_teacher"]))
    ref_s, ref_t, ref_pairs = reference_pairs(toks, messages)
    assert s_ids == ref_s and t_ids == ref_t[: len(t_ids)]
    assert [s_ids[i] for i, _ in pairs] == [t_ids[j] for _, j in pairs]
    assert ex["stats"]["id_mismatch"] == 0
    # both sides of a pair sit at the same byte offset of the same assistant content
    assert relative_offsets(
        s_tok, "student", messages, s_ids, [i for i, _ in pairs]
    ) == relative_offsets(t_tok, "teacher_b", messages, t_ids, [j for _, j in pairs])
    if all(ref_s[i] == ref_t[j] for i, j in ref_pairs):  # tokenizations agree inside the contents
        assert pairs == ref_pairs
    else:  # a boundary token differs: only those tokens are lost, nothing is shifted
        assert set(pairs) < set(ref_pairs) or len(pairs) >= len(ref_pairs) - 3
    if pairs:
        assert len(t_ids) == max(j for _, j in pairs) + 1
    n_prompt = ex["labels"].count(-100)
    assert ex["labels"][n_prompt:] == s_ids[n_prompt:] and all(
        x == -100 for x in ex["labels"][:n_prompt]
    )


def test_answer_copied_in_the_prompt_binds_to_the_answer(toks):
    answer = "The golden violin is quiet."
    messages = conv(f"Repeat: {answer}", answer, system=answer)
    s_tok, t_tok = toks["student"], toks["teacher_b"]
    ex = align_positions(s_tok, t_tok, messages, max_student_len=10_000)
    s_prompt = len(
        s_tok(
            render_chat(s_tok, messages[:-1], add_generation_prompt=True), add_special_tokens=False
        )["input_ids"]
    )
    t_prompt = len(
        t_tok(
            render_chat(t_tok, messages[:-1], add_generation_prompt=True), add_special_tokens=False
        )["input_ids"]
    )
    assert ex["align_student"] and min(ex["align_student"]) >= s_prompt
    assert min(ex["align_teacher"]) >= t_prompt
    got = b"".join(token_bytes(s_tok, [ex["input_ids"][i] for i in ex["align_student"]]))
    assert got == answer.encode()


def test_divergent_boundary_is_skipped_not_shifted(toks):
    # teacher_b merges its header newline with the answer's first newline, the student does not:
    # offset pairing drops only the tokens that differ
    messages = ADVERSARIAL[-1]
    ex = align_positions(toks["student"], toks["teacher_b"], messages, max_student_len=10_000)
    s_b = token_bytes(toks["student"], ex["input_ids"])
    text = b"".join(s_b[i] for i in ex["align_student"] if i >= ex["labels"].count(-100))
    assert text.endswith(b"Three newlines first.")
    assert ex["stats"]["pairs"] >= ex["stats"]["content_tokens"] - 4


def test_truncation_and_drop(toks):
    s_tok, t_tok = toks["student"], toks["teacher_b"]
    messages = ADVERSARIAL[2]
    full = align_positions(s_tok, t_tok, messages, max_student_len=10_000)
    n_prompt = full["labels"].count(-100)
    cut = align_positions(s_tok, t_tok, messages, max_student_len=n_prompt + 5)
    keep = [n for n, i in enumerate(full["align_student"]) if i < n_prompt + 5]
    assert cut["align_student"] == [full["align_student"][n] for n in keep]
    assert cut["align_teacher"] == [full["align_teacher"][n] for n in keep]
    assert len(cut["input_ids"]) == n_prompt + 5
    assert len(cut["teacher_input_ids"]) == cut["align_teacher"][-1] + 1
    assert cut["stats"]["pairs_cut_by_truncation"] == len(full["align_student"]) - len(keep)
    cap = full["align_teacher"][-1] - 3
    capped = align_positions(s_tok, t_tok, messages, max_student_len=10_000, max_teacher_len=cap)
    assert all(j < cap for j in capped["align_teacher"]) and len(capped["teacher_input_ids"]) <= cap
    assert align_positions(s_tok, t_tok, messages, max_student_len=n_prompt) is None
