"""Training data: JSONL readers, chat conversations → (input_ids, labels), and the BD3LM collator.

Conventions (bd3lm.md §5): the prompt is the chat template of all but the last message with the
generation prompt; its tokens get label -100, the final assistant turn (with its end-of-turn token) is
supervised. Rows whose prompt alone exceeds ``max_length`` are dropped; others are cut to
``max_length``. The collator appends EOS (with EOS labels) up to a multiple of the block size, then
right-pads with PAD (label -100) to the longest row of the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from tide.jsonl import iter_jsonl

IGNORE = -100


class DataError(ValueError):
    """A data file that cannot be read: names the file and the line."""


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> Iterator[dict]:
    """Yield the rows of a JSONL file; a broken row raises :class:`DataError` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    for lineno, row in iter_jsonl(path, DataError):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object")
        missing = [k for k in required if k not in row]
        if missing:
            raise DataError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        yield row


def chat_example(tokenizer, messages: list[dict], max_length: int) -> dict | None:
    """Tokenise one conversation; ``None`` when its prompt alone does not fit in ``max_length``."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=True, add_generation_prompt=True, return_dict=False
    )
    if len(prompt) >= max_length:
        return None
    if ids[: len(prompt)] != prompt:
        raise DataError("chat template renders the prompt differently inside the conversation")
    ids = ids[:max_length]
    labels = [IGNORE] * len(prompt) + ids[len(prompt):]
    return {"input_ids": ids, "labels": labels}


def text_example(tokenizer, text: str, max_length: int) -> dict:
    """Plain text (pretraining): every token supervised, EOS appended, cut to ``max_length``."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = ids[:max_length]
    return {"input_ids": ids, "labels": list(ids)}


def load_examples(tokenizer, path: str | Path, max_length: int, limit: int | None = None,
                  repeats: dict[str, int] | None = None) -> list[dict]:
    """Tokenise a world split: ``{"text"}`` rows (pretrain) or ``{"messages"}`` rows (sft/distill).

    ``repeats`` maps a row's ``family`` to how many times it enters the list (the mixture weight of
    that source: 0 drops it, 4 uses it four times per epoch); unnamed families enter once. Each
    example keeps its row's ``family`` (``None`` if it has none) for curricula.
    """
    repeats = repeats or {}
    out = []
    for row in read_jsonl(path):
        if limit is not None and len(out) >= limit:
            break
        if "messages" in row:
            ex = chat_example(tokenizer, row["messages"], max_length)
        elif "text" in row:
            ex = text_example(tokenizer, row["text"], max_length)
        else:
            raise DataError(f"{path}: row without 'text' or 'messages': {str(row)[:80]}")
        if ex is not None:
            ex["family"] = row.get("family")
            out.extend([ex] * repeats.get(row.get("family"), 1))
    if not out:
        raise DataError(f"{path}: no usable rows (all prompts longer than max_length={max_length}?)")
    return out


@dataclass
class BlockCollator:
    """Pad a batch of ``{"input_ids", "labels"}`` rows for BD3LM training.

    Returns ``input_ids[B,L]`` and ``labels[B,L]`` with ``L`` a multiple of ``block_size``; for
    ``block_size=1`` this is plain right padding (the AR collator).
    """

    pad_id: int
    eos_id: int
    block_size: int = 1

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        bs = self.block_size
        padded = []
        for row in rows:
            ids, labels = list(row["input_ids"]), list(row["labels"])
            fill = (-len(ids)) % bs  # EOS up to the block boundary, supervised
            padded.append((ids + [self.eos_id] * fill, labels + [self.eos_id] * fill))
        width = max(len(ids) for ids, _ in padded)
        width += (-width) % bs
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, (ids, lab) in enumerate(padded):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, : len(lab)] = torch.tensor(lab)
        return {"input_ids": input_ids, "labels": labels}
