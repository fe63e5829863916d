"""Where each message's content lies in a templated token sequence.

Exact path: the conversation is rendered once more with every content replaced by a unique
placeholder; substituting the contents back must reproduce the decoded ids byte for byte, and then
the byte span of every content is known exactly (no search, so a content can never bind to a copy
of itself elsewhere, e.g. inside the prompt or a template word). When the template does not insert
contents verbatim (e.g. it rewrites an assistant turn holding ``</think>``), the fallback is the
sequential search: message ``k`` is searched after the end of the last message found before it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from tide.align.tokens import byte_ends, token_bytes, token_span
from tide.tokenization import render_chat

ByteSpan = tuple[int, int]
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")


def _placeholder(k: int) -> str:
    return f"\ue000{k}\ue001"


def exact_content_spans(
    tokenizer, messages: list[dict], text: bytes
) -> list[ByteSpan | None] | None:
    """Byte spans of the contents by placeholder rendering, or None when that cannot be trusted.

    ``text`` = the decoded templated ids (possibly truncated, or followed by a generation prompt). A
    span is clipped to ``len(text)``; a content starting past the end gets None.
    """
    if any("\ue000" in m["content"] for m in messages):
        return None
    stand_ins = [{**m, "content": _placeholder(k)} for k, m in enumerate(messages)]
    rendered = render_chat(tokenizer, stand_ins)
    expected = bytearray()
    spans: list[ByteSpan | None] = [None] * len(messages)
    last = 0
    for match in _PLACEHOLDER.finditer(rendered):
        k = int(match.group(1))
        if k >= len(messages) or spans[k] is not None:  # unknown or duplicated placeholder
            return None
        expected += rendered[last : match.start()].encode("utf-8")
        content = messages[k]["content"].encode("utf-8")
        spans[k] = (len(expected), len(expected) + len(content))
        expected += content
        last = match.end()
    expected += rendered[last:].encode("utf-8")
    if not (text.startswith(expected) or bytes(expected).startswith(text)):
        return None
    return [None if s is None or s[0] >= len(text) else (s[0], min(s[1], len(text))) for s in spans]


def searched_content_spans(messages: list[dict], text: bytes) -> list[ByteSpan | None]:
    """Byte spans by sequential search: first occurrence of message ``k``'s content after the end of
    the previous message found (None when not found)."""
    spans: list[ByteSpan | None] = []
    pos = 0
    for m in messages:
        content = m["content"].encode("utf-8")
        at = text.find(content, pos) if content else -1
        if at < 0:
            spans.append(None)
            continue
        spans.append((at, at + len(content)))
        pos = at + len(content)
    return spans


def content_byte_spans(
    tokenizer,
    messages: list[dict],
    pieces: Sequence[bytes],
    *,
    roles: Collection[str] | None = None,
) -> list[ByteSpan | None]:
    """Per message, the byte span ``[start, end)`` of its content in ``b"".join(pieces)``.

    None for blank contents, contents not found, and roles outside ``roles`` (when given; the other
    messages still take part in the sequential search).
    """
    text = b"".join(pieces)
    spans = exact_content_spans(tokenizer, messages, text)
    if spans is None:
        spans = searched_content_spans(messages, text)
    return [
        None
        if span is None
        or not m["content"].strip()
        or (roles is not None and m["role"] not in roles)
        else span
        for m, span in zip(messages, spans)
    ]


def content_ranges(
    tokenizer, ids: Sequence[int], messages: list[dict], *, roles: Collection[str] | None = None
) -> list[tuple[int, int] | None]:
    """Per message, the token span ``[start, end)`` covering its content in the templated ``ids``.

    ``start`` is the token holding the content's first byte, ``end - 1`` the one holding its last
    byte (boundary tokens may also hold template bytes). None when the content is blank, cannot be
    found, or the message's role is not in ``roles``.
    """
    pieces = token_bytes(tokenizer, ids)
    ends = byte_ends(pieces)
    return [
        None if span is None else token_span(ends, *span)
        for span in content_byte_spans(tokenizer, messages, pieces, roles=roles)
    ]
