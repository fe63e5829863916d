"""Tokens as byte strings, and the templated encoding of a conversation.

Every tokenizer of the project is byte-level BPE over the GPT-2 byte alphabet: each ordinary token
is a string of printable stand-in characters, one per byte (``Ġ`` = space, ``Ċ`` = newline).
:func:`token_bytes` maps ids back to the bytes they stand for (added/special tokens to the utf-8 of
their text), so that concatenating the bytes of a templated id sequence gives the rendered text.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Sequence
from itertools import accumulate

from tide.tokenization import render_chat

IGNORE = -100
CHAT_ROLES = ("system", "user", "assistant")


class AlignmentError(ValueError):
    """A conversation or cache that cannot be aligned; the message names the problem."""


def gpt2_byte_decoder() -> dict[str, int]:
    """The GPT-2 byte alphabet inverted: stand-in character -> byte value (256 entries).

    Printable latin-1 bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves; the other
    68 bytes are numbered, in byte order, by the characters ``chr(256)``, ``chr(257)``, ...
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    keep = set(printable)
    decoder = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in keep:
            decoder[chr(256 + extra)] = b
            extra += 1
    return decoder


_BYTE_DECODER = gpt2_byte_decoder()
# tokenizer -> (vocabulary size when built, id -> bytes table)
_TABLES: weakref.WeakKeyDictionary[object, tuple[int, list[bytes]]] = weakref.WeakKeyDictionary()


def _token_string_bytes(tokenizer, token: str) -> bytes:
    """Bytes of one ordinary token string (GPT-2 alphabet; other tokenizers: via their decoder)."""
    try:
        return bytes(_BYTE_DECODER[ch] for ch in token)
    except KeyError:
        return tokenizer.convert_tokens_to_string([token]).encode("utf-8")


def byte_table(tokenizer) -> list[bytes]:
    """``table[id]`` = bytes of token ``id`` for the whole vocabulary (cached per tokenizer)."""
    size = len(tokenizer)
    cached = _TABLES.get(tokenizer)
    if cached is not None and cached[0] == size:
        return cached[1]
    added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
    strings = tokenizer.convert_ids_to_tokens(list(range(size)))
    table = [
        added[i].encode("utf-8") if i in added else _token_string_bytes(tokenizer, s or "")
        for i, s in enumerate(strings)
    ]
    _TABLES[tokenizer] = (size, table)
    return table


def token_bytes(tokenizer, ids: Sequence[int]) -> list[bytes]:
    """The byte string of each token of ``ids`` (list or 1-D LongTensor); specials as their utf-8 text."""
    table = byte_table(tokenizer)
    ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    out = []
    for i in ids:
        if not 0 <= i < len(table):
            raise AlignmentError(f"token id {i} is outside the vocabulary (size {len(table)})")
        out.append(table[i])
    return out


def byte_ends(pieces: Sequence[bytes]) -> list[int]:
    """End byte offset of each token in the concatenation of ``pieces``."""
    return list(accumulate(len(p) for p in pieces))


def token_span(ends: Sequence[int], start: int, end: int) -> tuple[int, int]:
    """Token span ``[a, b)`` from the token covering byte ``start`` to the one covering ``end - 1``.

    ``ends`` are cumulative token end offsets; requires ``0 <= start < end <= ends[-1]``.
    """
    first = bisect.bisect_right(ends, start)
    last = bisect.bisect_left(ends, end)
    return first, last + 1


def check_messages(messages) -> list[dict]:
    """Validate a conversation: a non-empty list of ``{"role", "content"}`` (roles system/user/assistant,
    string contents) ending with an assistant turn that follows at least one message. Raises :class:`AlignmentError` naming the problem."""
    if not isinstance(messages, list) or not messages:
        raise AlignmentError("'messages' must be a non-empty list")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise AlignmentError(f"message {k} must be an object with a string 'content'")
        if m.get("role") not in CHAT_ROLES:
            raise AlignmentError(
                f"message {k} has role {m.get('role')!r} (allowed: {', '.join(CHAT_ROLES)})"
            )
    if messages[-1]["role"] != "assistant":
        raise AlignmentError(
            f"the last message must be an assistant turn, not {messages[-1]['role']!r}"
        )
    if len(messages) < 2:
        raise AlignmentError(
            "the final assistant turn needs at least one message (its prompt) before it"
        )
    return messages


def encode_text(tokenizer, text: str) -> list[int]:
    """Ids of already-templated ``text`` (special-token strings become their ids; nothing added)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_chat(tokenizer, messages: list[dict]) -> list[int]:
    """Ids of the whole conversation in ``tokenizer``'s chat template (no generation prompt)."""
    return encode_text(tokenizer, render_chat(tokenizer, messages))


def prompt_length(tokenizer, messages: list[dict], pieces: Sequence[bytes]) -> int:
    """Number of leading tokens of the conversation that belong to the prompt.

    The prompt is ``messages[:-1]`` with the generation prompt. Counted on the full token sequence
    (``pieces`` = its :func:`token_bytes`) as the tokens that start inside the prompt text, so a token
    straddling the prompt/response boundary counts as prompt. Equals ``len(prompt ids)`` whenever the
    prompt tokenizes as a prefix of the conversation (the normal case).
    """
    prompt = render_chat(tokenizer, messages[:-1], add_generation_prompt=True).encode("utf-8")
    if not b"".join(pieces).startswith(prompt):
        raise AlignmentError(
            "the chat template renders the prompt differently inside the conversation"
        )
    starts = [0, *byte_ends(pieces)[:-1]]
    return bisect.bisect_left(starts, len(prompt))


def prompt_labels(ids: Sequence[int], prompt_len: int) -> list[int]:
    """Labels: ``-100`` on the first ``prompt_len`` tokens, the ids elsewhere."""
    return [IGNORE] * min(prompt_len, len(ids)) + list(ids[prompt_len:])
