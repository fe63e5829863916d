"""Tokenizers of the tiny world: train, save, load, describe.

Three byte-level BPE tokenizers (GPT-2 byte alphabet, so every token is a byte string and any text
round-trips exactly: no normalizer, no prefix space, no clean-up on decode):

* ``student``   Qwen3 analog. Ordinary BPE ids ``0..N-1``, then ``<|endoftext|>`` (pad), ``<|im_start|>``,
  ``<|im_end|>`` (eos), the remaining Qwen3 specials in Qwen3's order (``<tool_response>`` at ``N+22``
  like 151665, ``<think>``/``</think>`` last like 151667/151668), then ``<|mask|>`` (``N+26``, like
  151669, as the dllm loader appends it). Qwen3 ChatML template with thinking disabled.
* ``teacher_b`` WeDLM analog. The student's vocabulary without ``<|mask|>``; ids below
  ``shared_vocab_size = N+3`` (analog of 151646) are identical. Mask = an existing special
  (``<tool_response>``, like WeDLM's 151665). Plain ChatML with a default system turn.
* ``teacher_a`` LLaDA2 analog. Its own BPE (GPT-2 style splits, digits grouped by up to 3, line
  breaks apart from indentation, a cap on token length so that words split differently), specials
  ``<|endoftext|>`` (eos = pad), ``<|startoftext|>``, ``<|role_end|>``, ``<role>``, ``</role>``,
  ``<|mask|>``. LLaDA2 role-tag template.

Each is a directory that ``transformers.AutoTokenizer.from_pretrained`` loads, holding
``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja`` and ``tide_tokenizer.json``
(the metadata of :func:`tokenizer_meta`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import AutoTokenizer, PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import render_jinja_template

from tide.jsonl import iter_jsonl

ROLES = ("student", "teacher_b", "teacher_a")
META_FILE = "tide_tokenizer.json"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_FILES = {
    "student": "student_qwen3.jinja",
    "teacher_b": "teacher_b_chatml.jinja",
    "teacher_a": "teacher_a_llada2.jinja",
}
CHAT_STYLE_ROLE = {"qwen3": "student", "chatml": "teacher_b", "llada2": "teacher_a"}

# Qwen2/Qwen3 pre-tokenization: letters with one leading non-letter, single digits, punctuation runs.
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Teacher A: GPT-2 style (space + letters, punctuation apart from letters), digits in groups of <= 3,
# and, as in GPT-4-era byte-level tokenizers (Qwen's above), line breaks apart from the next line's
# indentation: a code prompt ending in "\n" then ends on a token boundary of its completion.
TEACHER_A_PATTERN = (
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen3's added tokens after the BPE vocabulary, in id order (151643..151668), with Qwen3's `special` flag.
QWEN3_SPECIALS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True),
    ("<|box_end|>", True), ("<|quad_start|>", True), ("<|quad_end|>", True),
    ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False), ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False),
    ("</tool_response>", False), ("<think>", False), ("</think>", False),
)
SHARED_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # part of the shared id prefix
STUDENT_MASK = "<|mask|>"
TEACHER_A_SPECIALS = ("<|endoftext|>", "<|startoftext|>", "<|role_end|>", "<role>", "</role>", "<|mask|>")

# Defaults of the `tokenizers:` config section (mirrored by workflow/schemas/tokenizers.schema.yaml).
DEFAULTS: dict[str, dict[str, Any]] = {
    "student": {"vocab_size": 1024, "min_frequency": 2, "max_token_bytes": None},
    "teacher_b": {"mask_token": "<tool_response>"},
    "teacher_a": {"vocab_size": 1536, "min_frequency": 2, "max_token_bytes": 5},
}
MISMATCH_SAMPLE_WORDS = 20000  # corpus words used to measure teacher_a vs student tokenization
# Words of the chat templates (the student entry serves the BPE shared with teacher_b), added to the
# BPE training texts (once per 10 corpus texts) so that, as in the real vocabularies, role names get
# ordinary tokens instead of byte fragments.
TEMPLATE_WORDS = {
    "student": ("system\n", "user\n", "assistant\n", "\n\n", "You are a helpful assistant."),
    "teacher_a": ("SYSTEM", "HUMAN", "ASSISTANT", "detailed thinking off"),
}


class TokenizerLoadError(OSError):
    """A tokenizer directory or hub id that exists but cannot be loaded."""


# --- config ------------------------------------------------------------------------------------
def resolve_config(cfg: dict | None) -> dict[str, dict[str, Any]]:
    """The ``tokenizers:`` section with defaults filled in; unknown keys and bad values raise ValueError."""
    cfg = {} if cfg is None else cfg
    if not isinstance(cfg, dict):
        raise TypeError(f"tokenizers config must be a mapping, not {type(cfg).__name__}")
    for key in cfg:
        if key not in DEFAULTS:
            raise ValueError(f"unknown config key 'tokenizers.{key}' (allowed: {', '.join(DEFAULTS)})")
    out: dict[str, dict[str, Any]] = {}
    for role, defaults in DEFAULTS.items():
        section = cfg.get(role) or {}
        if not isinstance(section, dict):
            raise TypeError(f"tokenizers.{role} must be a mapping, not {type(section).__name__}")
        for key in section:
            if key not in defaults:
                raise ValueError(
                    f"unknown config key 'tokenizers.{role}.{key}' (allowed: {', '.join(defaults)})"
                )
        out[role] = {**defaults, **section}
    for role, n_specials in (("student", len(QWEN3_SPECIALS) + 1), ("teacher_a", len(TEACHER_A_SPECIALS))):
        _check_bpe_section(role, out[role], n_specials)
    allowed_masks = [t for t, _ in QWEN3_SPECIALS if t not in SHARED_SPECIALS]
    if out["teacher_b"]["mask_token"] not in allowed_masks:
        raise ValueError(
            f"tokenizers.teacher_b.mask_token={out['teacher_b']['mask_token']!r} must be one of the "
            f"student's specials outside the shared prefix: {', '.join(allowed_masks)}"
        )
    return out


def _check_bpe_section(role: str, section: dict[str, Any], n_specials: int) -> None:
    """Type/range checks of one BPE section (vocab_size counts every id, specials included)."""
    smallest = 256 + n_specials + 1
    vocab, freq, cap = section["vocab_size"], section["min_frequency"], section["max_token_bytes"]
    if not _is_int(vocab) or vocab < smallest:
        raise ValueError(f"tokenizers.{role}.vocab_size must be an integer >= {smallest}, got {vocab!r}")
    if not _is_int(freq) or freq < 1:
        raise ValueError(f"tokenizers.{role}.min_frequency must be an integer >= 1, got {freq!r}")
    if cap is not None and (not _is_int(cap) or cap < 2):
        raise ValueError(f"tokenizers.{role}.max_token_bytes must be null or an integer >= 2, got {cap!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- corpus ------------------------------------------------------------------------------------
CORPUS_FILES = ("pretrain.jsonl", "sft.jsonl", "distill.jsonl")


def corpus_texts(corpus_dir: str | Path) -> Iterator[str]:
    """Texts of the world corpus: ``pretrain.jsonl`` rows ``{"text"}``, then every message content of
    ``sft.jsonl`` / ``distill.jsonl`` rows ``{"messages": [{"role", "content"}]}``. Missing files are
    skipped, but at least one must exist; a bad row raises ValueError naming file and line."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {corpus_dir}")
    files = [corpus_dir / name for name in CORPUS_FILES if (corpus_dir / name).is_file()]
    if not files:
        raise FileNotFoundError(f"no corpus file ({', '.join(CORPUS_FILES)}) in {corpus_dir}")
    for path in files:
        yield from _jsonl_texts(path)


def _jsonl_texts(path: Path) -> Iterator[str]:
    for lineno, row in iter_jsonl(path):
        texts = _row_texts(row)
        if texts is None:
            raise ValueError(
                f"{path}:{lineno}: row needs a string 'text' or a 'messages' list of "
                "{'role', 'content'} with string contents"
            )
        yield from texts


def _row_texts(row: Any) -> list[str] | None:
    """The texts of one corpus row, or None when the row has neither form."""
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("text"), str):
        return [row["text"]]
    messages = row.get("messages")
    if not isinstance(messages, list):
        return None
    contents = [m.get("content") if isinstance(m, dict) else None for m in messages]
    return contents if all(isinstance(c, str) for c in contents) else None


# --- training ----------------------------------------------------------------------------------
def train_bpe(
    texts: list[str], pattern: str, vocab_size: int, min_frequency: int, max_token_bytes: int | None
) -> Tokenizer:
    """A byte-level BPE (no specials yet) of at most ``vocab_size`` ids, trained on ``texts``.

    ``pattern`` splits text before BPE (merges never cross a split); ``max_token_bytes`` caps the
    length of merged tokens. The 256 byte symbols are always present, so nothing is ever unknown.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        max_token_length=max_token_bytes,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _with_added(core: Tokenizer, tokens: Iterable[tuple[str, bool]]) -> Tokenizer:
    """A copy of ``core`` with ``(content, special)`` tokens appended in order (ids len(core), ...)."""
    tok = Tokenizer.from_str(core.to_str())
    for content, special in tokens:
        added = AddedToken(content, special=special, normalized=False)
        n = tok.add_special_tokens([added]) if special else tok.add_tokens([added])
        if n != 1:
            raise ValueError(f"special token {content!r} is already an ordinary token of the vocabulary")
    return tok


def _wrap(tok: Tokenizer, role: str, **special_tokens: str) -> PreTrainedTokenizerFast:
    """The transformers tokenizer of ``role``: its template, right padding, exact decoding."""
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tok.to_str()),
        chat_template=chat_template(role),
        padding_side="right",
        clean_up_tokenization_spaces=False,
        **special_tokens,
    )


def chat_template(role: str) -> str:
    """The jinja chat template of ``role`` (shipped in ``tide/templates``)."""
    if role not in TEMPLATE_FILES:
        raise ValueError(f"unknown tokenizer role {role!r} (known: {', '.join(ROLES)})")
    return (TEMPLATE_DIR / TEMPLATE_FILES[role]).read_text(encoding="utf-8")


def build_tokenizers(texts: list[str], cfg: dict) -> dict[str, PreTrainedTokenizerFast]:
    """Train the three tokenizers in memory (see the module docstring for their layout)."""
    cfg = resolve_config(cfg)
    s, a = cfg["student"], cfg["teacher_a"]
    student_core = train_bpe(_with_template_words(texts, "student", s["min_frequency"]), QWEN_PATTERN,
                             s["vocab_size"] - len(QWEN3_SPECIALS) - 1, s["min_frequency"],
                             s["max_token_bytes"])
    teacher_a_core = train_bpe(_with_template_words(texts, "teacher_a", a["min_frequency"]),
                               TEACHER_A_PATTERN, a["vocab_size"] - len(TEACHER_A_SPECIALS),
                               a["min_frequency"], a["max_token_bytes"])
    shared = _with_added(student_core, QWEN3_SPECIALS)
    return {
        "student": _wrap(_with_added(shared, [(STUDENT_MASK, True)]), "student",
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", mask_token=STUDENT_MASK),
        "teacher_b": _wrap(shared, "teacher_b", eos_token="<|im_end|>", pad_token="<|endoftext|>",
                           mask_token=cfg["teacher_b"]["mask_token"]),
        "teacher_a": _wrap(_with_added(teacher_a_core, [(t, True) for t in TEACHER_A_SPECIALS]),
                           "teacher_a", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                           mask_token="<|mask|>"),
    }


def _with_template_words(texts: list[str], role: str, min_frequency: int) -> list[str]:
    """``texts`` plus the template words of ``role``, each repeated ``max(min_frequency, len(texts)//10)``."""
    return texts + list(TEMPLATE_WORDS[role]) * max(min_frequency, len(texts) // 10)


def train_tokenizers(texts: Iterable[str], out_dir: str | Path, cfg: dict) -> dict[str, Path]:
    """Train and save ``out_dir/{student,teacher_b,teacher_a}/``; returns the three directories.

    Deterministic: the same texts and config give byte-identical files. An existing role directory
    is replaced. Each directory also gets ``tide_tokenizer.json`` (:func:`tokenizer_meta` plus
    ``word_mismatch_vs_student``, the share of corpus words tokenized differently from the student).
    """
    cfg = resolve_config(cfg)
    texts = _text_list(texts)
    built = build_tokenizers(texts, cfg)
    sample = _word_sample(texts, MISMATCH_SAMPLE_WORDS)
    paths: dict[str, Path] = {}
    for role in ROLES:
        path = Path(out_dir) / role
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        built[role].save_pretrained(path)
        meta = tokenizer_meta(built[role])
        meta["word_mismatch_vs_student"] = round(_mismatch(built[role], built["student"], sample), 6)
        (path / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths[role] = path
    return paths


def _text_list(texts: Iterable[str]) -> list[str]:
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"training text #{i} is a {type(text).__name__}, not a str")
    if not any(t.strip() for t in out):
        raise ValueError("no training text: the corpus is empty")
    return out


# --- loading -----------------------------------------------------------------------------------
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def load_tokenizer(path_or_id: str | Path, mask_token: str = STUDENT_MASK, *, role: str | None = None
                   ) -> PreTrainedTokenizerFast:
    """Load a tokenizer directory (tiny world) or a hub id (paper scale) and make sure it has a mask token.

    Without a mask token, ``mask_token`` becomes one: its existing id if the vocabulary holds it (pass
    ``"<tool_response>"`` for WeDLM), else it is appended as a new special token, as the dllm loader
    appends ``<|mask|>`` to Qwen3 (id 151669). A missing local path raises FileNotFoundError, a
    broken directory TokenizerLoadError, both naming the path. With ``role``, a tokenizer whose chat
    template is another role's (e.g. the student's handed to teacher-B) raises TokenizerLoadError.
    """
    text = str(path_or_id)
    local = Path(text).expanduser()
    if not local.exists() and (isinstance(path_or_id, Path) or not _HUB_ID.fullmatch(text)):
        raise FileNotFoundError(f"tokenizer directory not found: {local}")
    if local.exists() and not local.is_dir():
        raise TokenizerLoadError(f"tokenizer path is not a directory: {local}")
    if local.is_dir() and not any((local / f).is_file() for f in TOKENIZER_FILES):
        raise TokenizerLoadError(f"no tokenizer file ({', '.join(TOKENIZER_FILES)}) in {local}")
    source = str(local) if local.exists() else text
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except Exception as err:  # transformers raises many types for unreadable/missing files
        where = f"directory {local}" if local.exists() else f"hub id {text!r} (no local directory)"
        raise TokenizerLoadError(f"cannot load a tokenizer from {where}: {err}") from err
    if tok.mask_token is None:
        tok.add_special_tokens({"mask_token": mask_token})
    if role is not None and (found := tokenizer_role(tok)) != role:
        raise TokenizerLoadError(f"{text} holds the {found or 'unknown'} tokenizer (by its chat "
                                 f"template), not the {role} one this stage needs")
    return tok


PRETRAINED_MASKS = {"student": STUDENT_MASK, "teacher_b": "<tool_response>", "teacher_a": "<|mask|>"}


def render_chat(
    tokenizer: PreTrainedTokenizerFast,
    messages: list[dict[str, str]],
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
) -> str:
    """The chat-formatted text, with ``enable_thinking=False`` (as dllm forces for Qwen3)."""
    return tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
        enable_thinking=False,
    )


# --- metadata ----------------------------------------------------------------------------------
def tokenizer_meta(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """What downstream code needs to know about a tokenizer, read off the tokenizer itself.

    ``chat_style`` is ``qwen3`` / ``chatml`` / ``llada2`` (from the template), ``role`` follows from it.
    ``ordinary_vocab_size`` = first added-token id. ``shared_vocab_size`` = ``id(<|im_end|>)+1`` when
    ``<|endoftext|>, <|im_start|>, <|im_end|>`` follow each other (Qwen layout: 151646), else None.
    """
    style = _chat_style(tokenizer.chat_template)
    added_ids = list(tokenizer.added_tokens_decoder)
    return {
        "role": tokenizer_role(tokenizer),
        "chat_style": style,
        "vocab_size": len(tokenizer),
        "ordinary_vocab_size": min(added_ids) if added_ids else len(tokenizer),
        "shared_vocab_size": _shared_vocab_size(tokenizer),
        "mask_token": tokenizer.mask_token,
        "mask_token_id": tokenizer.mask_token_id,
        "eos": tokenizer.eos_token,
        "eos_token_id": tokenizer.eos_token_id,
        "pad": tokenizer.pad_token,
        "pad_token_id": tokenizer.pad_token_id,
        "padding_side": tokenizer.padding_side,
    }


def tokenizer_role(tokenizer: PreTrainedTokenizerFast) -> str | None:
    """``student`` / ``teacher_b`` / ``teacher_a``, told by the chat template (None if unknown)."""
    return CHAT_STYLE_ROLE.get(_chat_style(tokenizer.chat_template))


_EMPTY_THINK = "<think>\n\n</think>"
_STYLE_PROBE = [{"role": "user", "content": "Hi"}]


def _chat_style(template: str | None) -> str | None:
    """``llada2`` (role tags); ``qwen3``, the student's ChatML, whose generation prompt with thinking
    disabled carries the empty ``<think>\\n\\n</think>`` block; ``chatml``, any other ``<|im_start|>``
    template, also one that mentions ``<think>`` (Qwen-family templates strip reasoning from history,
    or open a think block); else None. Told by rendering a one-message prompt."""
    if not template:
        return None
    if "<role>" in template:
        return "llada2"
    if "<|im_start|>" not in template:
        return None
    try:
        prompt = render_jinja_template([_STYLE_PROBE], chat_template=template,
                                       add_generation_prompt=True, enable_thinking=False)[0][0]
    except (TemplateError, TypeError, ValueError):  # cannot render the probe: judge by the source
        prompt = template.replace("\\n", "\n")
    return "qwen3" if _EMPTY_THINK in prompt else "chatml"


def _shared_vocab_size(tokenizer: PreTrainedTokenizerFast) -> int | None:
    ids = [tokenizer.convert_tokens_to_ids(t) for t in SHARED_SPECIALS]
    vocab = tokenizer.get_vocab()
    if all(t in vocab for t in SHARED_SPECIALS) and ids == list(range(ids[0], ids[0] + 3)):
        return ids[2] + 1
    return None


# --- cross-tokenizer comparison ----------------------------------------------------------------
_WORD = re.compile(r"\s*\S+")


def _word_sample(texts: Iterable[str], max_words: int) -> Counter[str]:
    """Counts of the first ``max_words`` words (each with its leading whitespace) of ``texts``."""
    counts: Counter[str] = Counter()
    taken = 0
    for text in texts:
        for word in _WORD.findall(text):
            counts[word] += 1
            taken += 1
            if taken >= max_words:
                return counts
    return counts


def _byte_tokens(tokenizer: PreTrainedTokenizerFast, words: list[str]) -> list[list[str]]:
    """Token strings (GPT-2 byte alphabet) of each word, encoded on its own."""
    return [e.tokens for e in tokenizer.backend_tokenizer.encode_batch(words, add_special_tokens=False)]


def _mismatch(a: PreTrainedTokenizerFast, b: PreTrainedTokenizerFast, counts: Counter[str]) -> float:
    words = sorted(counts)
    if not words:
        return 0.0
    differ = sum(counts[w] for w, ta, tb in zip(words, _byte_tokens(a, words), _byte_tokens(b, words))
                 if ta != tb)
    return differ / sum(counts.values())


def word_mismatch_rate(
    a: PreTrainedTokenizerFast,
    b: PreTrainedTokenizerFast,
    texts: Iterable[str],
    max_words: int = MISMATCH_SAMPLE_WORDS,
) -> float:
    """Share of word occurrences (first ``max_words`` words of ``texts``) whose byte tokens differ."""
    return _mismatch(a, b, _word_sample(texts, max_words))
