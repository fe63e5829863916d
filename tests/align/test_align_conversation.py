"""tide.align Pipeline A on real (small) tokenizers: byte tokens, content ranges, and the chunks of
adversarial conversations against an independent reference built from the templates' structure."""

from __future__ import annotations

import itertools

import pytest
from conversations import ADVERSARIAL, conv

from tide.align import AlignmentError, align_conversation, chunk_kind, content_ranges, token_bytes
from tide.align.ranges import exact_content_spans, searched_content_spans
from tide.tokenization import render_chat

BIG = {"max_student_len": 10_000, "max_teacher_len": 10_000}


def ids_of(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def content_start(role: str, messages: list[dict], k: int, tok) -> int:
    """Byte offset of message k's content, from the template's known turn headers (test-side facts)."""
    m = messages[k]
    if role == "teacher_a" and k == 0 and m["role"] == "system":
        return len(b"<role>SYSTEM</role>")
    if k:
        prefix = render_chat(tok, messages[:k])
    else:
        prefix = (
            "<role>SYSTEM</role>detailed thinking off<|role_end|>" if role == "teacher_a" else ""
        )
    if role == "student":
        header = f"<|im_start|>{m['role']}\n" + (
            "<think>\n\n</think>\n\n" if m["role"] == "assistant" else ""
        )
    else:
        header = {
            "user": "<role>HUMAN</role>",
            "assistant": "<role>ASSISTANT</role>",
            "system": "<role>SYSTEM</role>",
        }[m["role"]]
    return len((prefix + header).encode("utf-8"))


def boundaries(pieces: list[bytes], start: int, n: int) -> dict[int, tuple[int, int]]:
    """Relative offsets r in [0, n] that are token boundaries -> (token starting there, tokens ending there)."""
    out, pos = {}, 0
    for i, p in enumerate(pieces):
        for where, idx in ((pos, ("start", i)), (pos + len(p), ("end", i))):
            r = where - start
            if 0 <= r <= n:
                out.setdefault(r, {})[idx[0]] = idx[1]
        pos += len(p)
    return out


def reference_message_chunks(t_pieces, t_start, s_pieces, s_start, n):
    """Chunks between consecutive byte offsets of the content that are boundaries on both sides."""
    bt, bs = boundaries(t_pieces, t_start, n), boundaries(s_pieces, s_start, n)
    shared = sorted(set(bt) & set(bs))
    return [
        (bt[a]["start"], bt[b]["end"] + 1, bs[a]["start"], bs[b]["end"] + 1)
        for a, b in itertools.pairwise(shared)
    ]


def test_token_bytes_reproduce_the_rendered_text(toks):
    for role, tok in toks.items():
        for messages in ADVERSARIAL:
            text = render_chat(tok, messages)
            pieces = token_bytes(tok, ids_of(tok, text))
            assert b"".join(pieces) == text.encode("utf-8"), role
    s = toks["student"]
    assert token_bytes(s, [s.convert_tokens_to_ids("<|im_start|>")]) == [b"<|im_start|>"]
    with pytest.raises(AlignmentError, match="outside the vocabulary"):
        token_bytes(s, [len(s)])


@pytest.mark.parametrize("index", range(len(ADVERSARIAL)))
def test_chunks_equal_the_boundary_reference(toks, index):
    messages = ADVERSARIAL[index]
    s_tok, t_tok = toks["student"], toks["teacher_a"]
    ex = align_conversation(s_tok, t_tok, messages, **BIG)
    s_ids, t_ids, chunks = ex["input_ids"], ex["teacher_input_ids"], ex["chunks"]
    s_full = ids_of(s_tok, render_chat(s_tok, messages))
    t_full = ids_of(t_tok, render_chat(t_tok, messages))
    assert s_ids == s_full
    s_pieces, t_pieces = token_bytes(s_tok, s_full), token_bytes(t_tok, t_full)
    expected = []
    for k, m in enumerate(messages):
        if m["content"].strip():
            expected += reference_message_chunks(
                t_pieces,
                content_start("teacher_a", messages, k, t_tok),
                s_pieces,
                content_start("student", messages, k, s_tok),
                len(m["content"].encode()),
            )
    assert chunks == expected
    for t0, t1, s0, s1 in chunks:  # every chunk: same text on both sides; ordered
        assert b"".join(t_pieces[t0:t1]) == b"".join(s_pieces[s0:s1])
    for a, b in itertools.pairwise(chunks):
        assert a[1] <= b[0] and a[3] <= b[2]
    assert t_ids == t_full[: chunks[-1][1]]  # teacher cut at the end of the last chunk
    # labels: -100 exactly on the tokenized prompt
    prompt = ids_of(s_tok, render_chat(s_tok, messages[:-1], add_generation_prompt=True))
    assert s_full[: len(prompt)] == prompt
    assert ex["labels"] == [-100] * len(prompt) + s_full[len(prompt) :]
    # every chunk of the final answer lies after the prompt (no binding to a copy in the prompt)
    last_start = content_start("student", messages, len(messages) - 1, s_tok)
    answer = [c for c in chunks if sum(map(len, s_pieces[: c[2]])) >= last_start]
    assert all(c[2] >= len(prompt) for c in answer)
    if messages[-1]["content"].strip():
        assert answer, "the final answer got no chunk"


def test_token_straddling_template_and_content_is_in_no_chunk(toks):
    messages = ADVERSARIAL[-1]  # the user content starts with "\n", merged with the header's "\n"
    s_tok = toks["student"]
    ex = align_conversation(s_tok, toks["teacher_a"], messages, **BIG)
    pieces = token_bytes(s_tok, ex["input_ids"])
    header = len(b"<|im_start|>user\n")
    ends = [sum(map(len, pieces[: i + 1])) for i in range(len(pieces))]
    straddler = next(i for i, e in enumerate(ends) if e > header)
    assert ends[straddler] - len(pieces[straddler]) < header  # starts inside the header
    assert not any(c[2] <= straddler < c[3] for c in ex["chunks"])
    assert any(c[2] == straddler + 1 for c in ex["chunks"])  # the content resumes right after it


def test_coverage_and_all_chunk_kinds(toks):
    kinds, covered, total = set(), 0, 0
    for messages in ADVERSARIAL:
        ex = align_conversation(toks["student"], toks["teacher_a"], messages, **BIG)
        kinds |= {chunk_kind(c) for c in ex["chunks"]}
        covered += ex["stats"]["chunk_bytes"]
        total += ex["stats"]["content_bytes"]
    assert kinds == {"1:1", "1:n", "n:1", "n:m"}
    assert covered / total > 0.9


def test_copy_of_the_answer_inside_the_prompt(toks):
    s_tok = toks["student"]
    answer = "The golden violin is quiet."
    messages = conv(f"Say: {answer}", answer, system=answer)
    ids = ids_of(s_tok, render_chat(s_tok, messages))
    n_prompt = len(ids_of(s_tok, render_chat(s_tok, messages[:-1], add_generation_prompt=True)))
    ranges = content_ranges(s_tok, ids, messages)
    assert ranges[2][0] >= n_prompt and ranges[2][1] == len(ids) - 2  # before <|im_end|>, "\n"
    assert ranges[0][1] <= ranges[1][0]
    assert b"".join(token_bytes(s_tok, ids[slice(*ranges[2])])) == answer.encode()
    assert content_ranges(s_tok, ids, messages, roles=("assistant",))[:2] == [None, None]
    # a content equal to a template word binds to the content, not to the turn header
    messages = conv("user", "assistant")
    ids = ids_of(s_tok, render_chat(s_tok, messages))
    ranges = content_ranges(s_tok, ids, messages)
    pieces = token_bytes(s_tok, ids)
    assert sum(map(len, pieces[: ranges[0][0]])) == len(b"<|im_start|>user\n")


def test_fallback_search_when_the_template_rewrites_a_content(toks):
    s_tok = toks["student"]
    messages = conv(
        "Think first.", "<think>plan</think>\n\nThe answer."
    )  # template keeps the tail only
    text = render_chat(s_tok, messages).encode()
    assert exact_content_spans(s_tok, messages, text) is None
    spans = searched_content_spans(messages, text)
    assert spans[1] is None and text[slice(*spans[0])] == b"Think first."
    ex = align_conversation(s_tok, toks["teacher_a"], messages, **BIG)
    assert ex["chunks"] and all(c[3] <= len(ex["input_ids"]) for c in ex["chunks"])
    # sequential search skips the earlier copy: message k is searched after message k-1
    repeated = conv("abc abc", "abc")
    spans = searched_content_spans(repeated, b"<u>abc abc</u><a>abc</a>")
    assert spans == [(3, 10), (17, 20)]


def test_truncation_cap_and_drop(toks):
    s_tok, t_tok = toks["student"], toks["teacher_a"]
    messages = ADVERSARIAL[2]
    full = align_conversation(s_tok, t_tok, messages, **BIG)
    n_prompt = full["labels"].count(-100)
    cut = align_conversation(
        s_tok, t_tok, messages, max_student_len=n_prompt + 7, max_teacher_len=10_000
    )
    assert len(cut["input_ids"]) == n_prompt + 7 and cut["labels"] == full["labels"][: n_prompt + 7]
    assert cut["chunks"] == [c for c in full["chunks"] if c[3] <= n_prompt + 7]
    assert cut["teacher_input_ids"] == full["teacher_input_ids"][: cut["chunks"][-1][1]]
    cap = full["chunks"][-1][1] - 4
    capped = align_conversation(s_tok, t_tok, messages, max_student_len=10_000, max_teacher_len=cap)
    assert capped["chunks"] == [c for c in full["chunks"] if c[1] <= cap]
    assert len(capped["teacher_input_ids"]) == cap
    assert (
        capped["stats"]["chunks_cut_by_teacher_cap"]
        == len(full["chunks"]) - len(capped["chunks"])
        > 0
    )
    assert (
        align_conversation(s_tok, t_tok, messages, max_student_len=n_prompt, max_teacher_len=99)
        is None
    )


@pytest.mark.parametrize(
    "messages, match",
    [
        ([], "non-empty"),
        ([{"role": "user", "content": "hi"}], "last message must be an assistant"),
        ([{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}], "role 'tool'"),
        ([{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}], "message 0"),
    ],
)
def test_bad_conversations_raise(toks, messages, match):
    with pytest.raises(AlignmentError, match=match):
        align_conversation(toks["student"], toks["teacher_a"], messages, **BIG)
