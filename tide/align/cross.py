"""Pipeline A: one conversation in both tokenizations, aligned into byte chunks (spec §d).

Per message whose content is found on both sides, the content's token range is aligned with
:func:`align_chunks`. The boundary tokens of a range may also hold template bytes (a newline of the
header merged with the content's first newline, say); the walk runs on the tokens cut to the
content bytes, and a chunk holding such a straddling token is dropped, so every chunk's two sides
are byte-identical text. Prompt messages give chunks too; training never activates them.
"""

from __future__ import annotations

from collections.abc import Sequence

from tide.align.chunks import Chunk, align_chunks
from tide.align.ranges import ByteSpan, content_byte_spans
from tide.align.tokens import (
    byte_ends,
    check_messages,
    encode_chat,
    prompt_labels,
    prompt_length,
    token_bytes,
    token_span,
)


class _Side:
    """One tokenization of the conversation: its tokens' bytes and byte offsets."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces
        self.ends = byte_ends(pieces)

    def start(self, i: int) -> int:
        return self.ends[i - 1] if i else 0

    def cut(self, span: ByteSpan) -> tuple[int, int, list[bytes], bool, bool]:
        """Tokens overlapping ``span``: ``(first, end, bytes cut to span, straddles start, straddles end)``."""
        lo, hi = span
        first, end = token_span(self.ends, lo, hi)
        cut = [self.pieces[i] for i in range(first, end)]
        head = lo - self.start(first)
        tail = self.ends[end - 1] - hi
        if tail > 0:
            cut[-1] = cut[-1][: len(cut[-1]) - tail]
        if head > 0:
            cut[0] = cut[0][head:]
        return first, end, cut, head > 0, tail > 0


def range_chunks(teacher: _Side, t_span: ByteSpan, student: _Side, s_span: ByteSpan) -> list[Chunk]:
    """Absolute chunks of one content range (student side may be truncated: ``student.pieces``)."""
    s_span = (s_span[0], min(s_span[1], student.ends[-1] if student.ends else 0))
    if t_span[0] >= t_span[1] or s_span[0] >= s_span[1]:
        return []
    t0, _t1, t_cut, t_head, t_tail = teacher.cut(t_span)
    s0, _s1, s_cut, s_head, s_tail = student.cut(s_span)
    out = []
    for a, b, c, d in align_chunks(t_cut, s_cut):
        if (
            (t_head and a == 0)
            or (s_head and c == 0)
            or (t_tail and b == len(t_cut))
            or (s_tail and d == len(s_cut))
        ):
            continue  # holds template bytes on one side
        out.append((t0 + a, t0 + b, s0 + c, s0 + d))
    return out


def align_conversation(
    student_tok, teacher_tok, messages: list[dict], *, max_student_len: int, max_teacher_len: int
) -> dict | None:
    """Student/teacher ids, student labels and the byte chunks of one conversation (Pipeline A).

    Returns None when the student prompt alone has ``>= max_student_len`` tokens (dropped sample).
    Otherwise a dict:

    * ``input_ids``, ``labels``: student template over all messages, cut to ``max_student_len``;
      labels ``-100`` on the prompt (``messages[:-1]`` + generation prompt).
    * ``teacher_input_ids``: teacher template, cut at the end of the last chunk, at most
      ``max_teacher_len`` tokens (full length, capped, when there is no chunk).
    * ``chunks``: ``[(t_start, t_end, s_start, s_end)]`` absolute token indices, over every message's
      content in order; chunks past the student cut are dropped, and so are chunks cut by the teacher
      cap (safe deviation: the official code keeps them with no teacher tokens).
    * ``stats``: byte counts for the cache summary (``content_bytes``, ``chunk_bytes``,
      ``response_bytes``, ``response_chunk_bytes``, ``chunks_cut_by_teacher_cap``).
    """
    check_messages(messages)
    s_ids = encode_chat(student_tok, messages)
    s_pieces = token_bytes(student_tok, s_ids)
    n_prompt = prompt_length(student_tok, messages, s_pieces)
    if n_prompt >= max_student_len:
        return None
    t_ids = encode_chat(teacher_tok, messages)
    t_pieces = token_bytes(teacher_tok, t_ids)
    s_spans = content_byte_spans(student_tok, messages, s_pieces)
    t_spans = content_byte_spans(teacher_tok, messages, t_pieces)
    student = _Side(s_pieces[:max_student_len])
    teacher = _Side(t_pieces)
    chunks: list[Chunk] = []
    last_chunks: list[Chunk] = []
    for k, (t_span, s_span) in enumerate(zip(t_spans, s_spans)):
        if t_span is None or s_span is None:
            continue
        found = range_chunks(teacher, t_span, student, s_span)
        chunks += found
        if k == len(messages) - 1:
            last_chunks = found
    t_len = min(max((c[1] for c in chunks), default=len(t_ids)), max_teacher_len)
    kept = [c for c in chunks if c[1] <= t_len]
    return {
        "input_ids": s_ids[:max_student_len],
        "labels": prompt_labels(s_ids, n_prompt)[:max_student_len],
        "teacher_input_ids": t_ids[:t_len],
        "chunks": kept,
        "stats": {
            "content_bytes": sum(
                len(m["content"].encode("utf-8")) for m in messages if m["content"].strip()
            ),
            "chunk_bytes": _chunk_bytes(student.pieces, kept),
            "response_bytes": len(messages[-1]["content"].encode("utf-8"))
            if messages[-1]["content"].strip()
            else 0,
            "response_chunk_bytes": _chunk_bytes(
                student.pieces, [c for c in last_chunks if c[1] <= t_len]
            ),
            "chunks_cut_by_teacher_cap": len(chunks) - len(kept),
        },
    }


def _chunk_bytes(student_pieces: Sequence[bytes], chunks: Sequence[Chunk]) -> int:
    """Bytes covered by ``chunks`` (student side)."""
    return sum(len(p) for c in chunks for p in student_pieces[c[2] : c[3]])
