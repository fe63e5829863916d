"""tide.tokenization: three byte-level BPE tokenizers (student, teacher_b, teacher_a) on a synthetic corpus.

Checks exact round trips, the shared-id layout of student/teacher_b, that teacher_a splits words
differently (slow reference count), the exact chat-template strings, metadata, determinism, config
errors and load_tokenizer's mask handling and error messages.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from tide.config import ConfigError, validate_config
from tide.tokenization import (
    DEFAULTS,
    META_FILE,
    QWEN3_SPECIALS,
    ROLES,
    TEMPLATE_DIR,
    TEMPLATE_FILES,
    TokenizerLoadError,
    corpus_texts,
    load_tokenizer,
    render_chat,
    tokenizer_meta,
    train_tokenizers,
    word_mismatch_rate,
)

torch.set_num_threads(1)

# --- synthetic corpus ---------------------------------------------------------------------------
SYLLABLES = ["ka", "ro", "mi", "tan", "vel", "or", "shi", "pu", "len", "dra", "gos", "ith", "ba", "qu"]
NOUNS = ["apple", "river", "castle", "engine", "garden", "lantern", "mountain", "violin", "harbor",
         "meadow", "library", "teacher", "window", "planet", "kitchen", "festival"]
VERBS = ["likes", "visits", "paints", "carries", "remembers", "builds", "finds", "sells", "guards"]
ADJECTIVES = ["red", "quiet", "ancient", "silver", "enormous", "curious", "golden", "gentle"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _sentence(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return (f"{_name(rng)} {rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} "
                f"near {_name(rng)}.")
    if kind == 1:
        a, b = rng.randrange(1000), rng.randrange(1000)
        return f"What is {a} + {b}? The answer is {a + b}."
    if kind == 2:
        a, b, c = (rng.randrange(50) for _ in range(3))
        return f"Compute {a} * {b} - {c}: first {a} * {b} = {a * b}, then {a * b} - {c} = {a * b - c}."
    if kind == 3:
        fn, n = rng.choice(["scale", "count_items", "reverse_list", "total"]), rng.randrange(10)
        return (f"def {fn}(xs, n={n}):\n    \"\"\"Return the kept items.\"\"\"\n"
                f"    return [x * n for x in xs if x > {rng.randrange(99)}]\n")
    if kind == 4:
        return (f"The capital of {_name(rng)} is {_name(rng)}; it was founded in "
                f"{1000 + rng.randrange(1000)} and has {rng.randrange(10**6)} people.")
    return f"Q: Is the {rng.choice(NOUNS)} {rng.choice(ADJECTIVES)}?\nA: {rng.choice(['Yes', 'No'])}."


def synthetic_corpus(n: int = 1500, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(_sentence(rng) for _ in range(rng.randint(1, 4))) for _ in range(n)]


EDGE_CASES = [
    "", " ", "  two leading spaces", "trailing spaces   ", "a  b   c    d", "\t\ttabs\tinside\t",
    "\n\nnewlines\n\n\nand\r\nCRLF\r\n", " \n \t mixed \u00a0 no-break\u2003em space",
    "naïve café – “quotes” … ß ẞ", "e\u0301 decomposed vs \u00e9 composed", "emoji 🤗 👩‍👩‍👧 🇫🇷",
    "中文 日本語 한국어 العربية עברית", "zero\u200bwidth\ufeffbom", "def f(x):\n\treturn {'a': [1, 2]}  # ok\n",
    "if (a<b) { x[i] += 0x1F; }", "<|im_end|> <think></think> <role>literal</role> <|mask|>",
    "1234567890 3.14159 -42 1e-9", "   ", "\u0000nul and \u007fdel",
]


def _random_unicode(rng: random.Random, n: int) -> str:
    ranges = [(0x20, 0x7E), (0x09, 0x0D), (0xA0, 0x24F), (0x370, 0x3FF), (0x4E00, 0x4E80),
              (0x1F300, 0x1F64F), (0xAC00, 0xAC40)]
    chars = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        chars.append(chr(rng.randint(lo, hi)))
    return "".join(chars)


def bytes_to_unicode() -> dict[int, str]:
    """Reference GPT-2 byte alphabet: printable bytes map to themselves, the rest to 256+k."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return synthetic_corpus()


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> tuple[dict[str, Path], float]:
    out = tmp_path_factory.mktemp("tok")
    start = time.perf_counter()
    paths = train_tokenizers(corpus, out, {})
    return paths, time.perf_counter() - start


@pytest.fixture(scope="module")
def toks(trained) -> dict[str, PreTrainedTokenizerFast]:
    return {role: AutoTokenizer.from_pretrained(path) for role, path in trained[0].items()}


# --- files, loading, round trips ------------------------------------------------------------------
def test_training_is_fast_and_writes_loadable_directories(trained, toks):
    paths, seconds = trained
    assert seconds < 10, f"training the three tokenizers took {seconds:.1f} s"
    assert set(paths) == set(ROLES)
    for role, path in paths.items():
        names = {p.name for p in path.iterdir()}
        assert {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", META_FILE} <= names
        assert isinstance(toks[role], PreTrainedTokenizerFast)
        assert toks[role].padding_side == "right"
        template = (TEMPLATE_DIR / TEMPLATE_FILES[role]).read_text(encoding="utf-8")
        assert (path / "chat_template.jinja").read_text(encoding="utf-8") == template


@pytest.mark.parametrize("role", ROLES)
def test_round_trip_is_exact(role, toks, corpus):
    tok = toks[role]
    rng = random.Random(1)
    texts = corpus[:300] + EDGE_CASES + [_random_unicode(rng, rng.randint(1, 40)) for _ in range(200)]
    texts += ["  ".join(corpus[i:i + 3]) for i in range(0, 30, 3)]
    for text in texts:
        ids = tok.encode(text)
        assert tok.decode(ids) == text, f"{role} round trip failed on {text!r}"
        assert tok(text)["input_ids"] == ids  # no BOS/EOS added by the call either


@pytest.mark.parametrize("role", ROLES)
def test_every_ordinary_token_is_a_byte_string(role, toks):
    tok = toks[role]
    alphabet = bytes_to_unicode()
    inverse = {c: b for b, c in alphabet.items()}
    vocab = tok.get_vocab()
    ordinary = [t for t, i in vocab.items() if i < tokenizer_meta(tok)["ordinary_vocab_size"]]
    assert all(c in vocab for c in alphabet.values()), "all 256 byte symbols must be tokens"
    for token in ordinary:
        assert all(c in inverse for c in token), f"{token!r} is not a GPT-2 byte string"
    # decoding one token = its bytes, for an ASCII letter token with a leading space
    space_tokens = [t for t in ordinary if t.startswith("Ġ") and t[1:].isalpha()]
    assert space_tokens
    assert tok.decode([vocab[space_tokens[0]]]) == " " + space_tokens[0][1:]


def test_offsets_point_into_the_text(toks, corpus):
    for role in ROLES:
        tok = toks[role]
        for text in corpus[:50]:
            enc = tok(text, return_offsets_mapping=True)
            for tid, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
                assert text[start:end] == tok.decode([tid]), (role, text, start, end)


# --- vocabulary layouts -------------------------------------------------------------------------
def test_student_layout_mirrors_qwen3(toks):
    tok = toks["student"]
    meta = tokenizer_meta(tok)
    n = meta["ordinary_vocab_size"]
    assert n <= DEFAULTS["student"]["vocab_size"] - len(QWEN3_SPECIALS) - 1
    for k, (content, special) in enumerate(QWEN3_SPECIALS):
        assert tok.convert_tokens_to_ids(content) == n + k
        assert tok.added_tokens_decoder[n + k].special == special, content
    assert tok.convert_tokens_to_ids("<tool_response>") == n + 22  # 151665 in Qwen3
    assert tok.convert_tokens_to_ids("</think>") == n + 25  # 151668
    assert tok.mask_token == "<|mask|>" and tok.mask_token_id == n + 26 == len(tok) - 1  # 151669
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", n + 2)
    assert (tok.pad_token, tok.pad_token_id) == ("<|endoftext|>", n)
    assert meta["shared_vocab_size"] == n + 3
    assert len(tok) <= DEFAULTS["student"]["vocab_size"]


def test_teacher_b_shares_the_student_ids(toks, corpus):
    s, b = toks["student"], toks["teacher_b"]
    shared = tokenizer_meta(b)["shared_vocab_size"]
    assert shared == tokenizer_meta(s)["shared_vocab_size"]
    ids = list(range(shared))
    assert b.convert_ids_to_tokens(ids) == s.convert_ids_to_tokens(ids)
    vocab_b, vocab_s = b.get_vocab(), s.get_vocab()
    assert vocab_b == {t: i for t, i in vocab_s.items() if t != "<|mask|>"}
    assert b.mask_token == "<tool_response>" and b.mask_token_id == s.convert_tokens_to_ids("<tool_response>")
    assert b.mask_token_id != s.mask_token_id and b.mask_token_id >= shared
    assert (b.eos_token_id, b.pad_token_id) == (s.eos_token_id, s.pad_token_id)
    for text in corpus[:200]:
        assert b.encode(text) == s.encode(text)


def _words(text: str) -> list[str]:
    """Words with their leading whitespace, by a plain character loop."""
    words, current, seen_non_space = [], "", False
    for ch in text:
        if ch.isspace() and seen_non_space:
            words.append(current)
            current, seen_non_space = "", False
        current += ch
        seen_non_space = seen_non_space or not ch.isspace()
    if seen_non_space:
        words.append(current)
    return words


def test_teacher_a_has_its_own_vocabulary_and_splits_words_differently(toks, corpus, trained):
    a, s = toks["teacher_a"], toks["student"]
    assert len(a) != len(s)
    assert a.mask_token == "<|mask|>" and a.mask_token_id == a.convert_tokens_to_ids("<|mask|>")
    assert a.eos_token == a.pad_token == "<|endoftext|>"
    for special in ("<|startoftext|>", "<|role_end|>", "<role>", "</role>"):
        assert special in a.get_vocab()
    assert "<|im_end|>" not in a.get_vocab()
    assert tokenizer_meta(a)["shared_vocab_size"] is None
    # digits: the student splits them one by one, teacher_a groups up to three
    assert s.convert_ids_to_tokens(s.encode("12345")) == ["1", "2", "3", "4", "5"]
    assert all(len(t) <= 3 for t in a.convert_ids_to_tokens(a.encode("12345")))
    assert len(a.encode("12345")) < 5
    # slow reference: share of word occurrences whose byte tokens differ
    words = [w for text in corpus for w in _words(text)][:20000]
    cache: dict[str, bool] = {}
    differ = 0
    for word in words:
        if word not in cache:
            ta = a.convert_ids_to_tokens(a.encode(word, add_special_tokens=False))
            ts = s.convert_ids_to_tokens(s.encode(word, add_special_tokens=False))
            assert "".join(ta) == "".join(ts)  # same bytes, possibly different pieces
            cache[word] = ta != ts
        differ += cache[word]
    rate = differ / len(words)
    assert rate >= 0.30, f"only {rate:.1%} of words are tokenized differently"
    assert word_mismatch_rate(a, s, corpus) == pytest.approx(rate, abs=1e-9)
    meta = json.loads((trained[0]["teacher_a"] / META_FILE).read_text())
    assert meta["word_mismatch_vs_student"] == pytest.approx(rate, abs=1e-6)


# --- chat templates -------------------------------------------------------------------------------
CHAT = [
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "And 4 + 4?"},
    {"role": "assistant", "content": "8"},
]
THINK = "<think>\n\n</think>\n\n"
EXPECTED_CHAT = {
    "student": (
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
        f"<|im_start|>assistant\n{THINK}5<|im_end|>\n"
        "<|im_start|>user\nAnd 4 + 4?<|im_end|>\n"
        f"<|im_start|>assistant\n{THINK}8<|im_end|>\n"
    ),
    "teacher_b": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
        "<|im_start|>assistant\n5<|im_end|>\n"
        "<|im_start|>user\nAnd 4 + 4?<|im_end|>\n"
        "<|im_start|>assistant\n8<|im_end|>\n"
    ),
    "teacher_a": (
        "<role>SYSTEM</role>detailed thinking off<|role_end|>"
        "<role>HUMAN</role>What is 2 + 3?<|role_end|><role>ASSISTANT</role>5<|role_end|>"
        "<role>HUMAN</role>And 4 + 4?<|role_end|><role>ASSISTANT</role>8<|role_end|>"
    ),
}
EXPECTED_PROMPT = {  # CHAT[:3] with add_generation_prompt=True
    "student": EXPECTED_CHAT["student"].rsplit("<|im_start|>assistant", 1)[0]
    + f"<|im_start|>assistant\n{THINK}",
    "teacher_b": EXPECTED_CHAT["teacher_b"].rsplit("<|im_start|>assistant", 1)[0] + "<|im_start|>assistant\n",
    "teacher_a": EXPECTED_CHAT["teacher_a"].rsplit("<role>ASSISTANT</role>", 1)[0] + "<role>ASSISTANT</role>",
}
SYSTEM = {"role": "system", "content": "Answer briefly."}
EXPECTED_SYSTEM = {  # [SYSTEM, CHAT[0]] with add_generation_prompt=True
    "student": f"<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
    f"<|im_start|>assistant\n{THINK}",
    "teacher_b": "<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "teacher_a": "<role>SYSTEM</role>Answer briefly.\ndetailed thinking off<|role_end|>"
    "<role>HUMAN</role>What is 2 + 3?<|role_end|><role>ASSISTANT</role>",
}


@pytest.mark.parametrize("role", ROLES)
def test_a_code_prompt_ending_in_a_line_break_ends_on_a_token_boundary(role, toks):
    """HumanEval-style prompts end in '\n' and the completion starts with indentation: the prompt's
    tokens must be a prefix of the whole text's tokens, else the model is asked to continue from a
    token it never saw there in training (teacher_a once merged '\n' with the indentation)."""
    tok = toks[role]
    prompt = 'def scale(xs, n=3):\n    """Return the kept items."""\n'
    for body in ("    return [x * n for x in xs]\n", "    pass\n"):
        full = tok.encode(prompt + body, add_special_tokens=False)
        head = tok.encode(prompt, add_special_tokens=False)
        assert full[: len(head)] == head, (role, body, tok.convert_ids_to_tokens(full))


@pytest.mark.parametrize("role", ROLES)
def test_chat_template_renders_exact_strings(role, toks):
    tok = toks[role]
    assert tok.apply_chat_template(CHAT, tokenize=False) == EXPECTED_CHAT[role]
    assert tok.apply_chat_template(CHAT[:3], tokenize=False, add_generation_prompt=True) == EXPECTED_PROMPT[role]
    assert render_chat(tok, [SYSTEM, CHAT[0]], add_generation_prompt=True) == EXPECTED_SYSTEM[role]
    ids = tok.apply_chat_template(CHAT, tokenize=True, return_dict=False)
    assert tok.decode(ids) == EXPECTED_CHAT[role]
    assert tok.decode(ids[-1:]) == {"teacher_a": "<|role_end|>"}.get(role, "\n")


@pytest.mark.parametrize("role", ROLES)
def test_continue_final_message_as_lm_eval_uses_it(role, toks):
    tok = toks[role]
    prefix = "The answer is"
    text = render_chat(tok, [SYSTEM, CHAT[0], {"role": "assistant", "content": prefix}],
                       continue_final_message=True)
    prompt = render_chat(tok, [SYSTEM, CHAT[0]], add_generation_prompt=True)
    assert text == prompt + prefix
    if role == "student":
        assert text.endswith(f"<|im_start|>assistant\n{THINK}The answer is")


def test_special_tokens_are_single_ids_in_rendered_chats(toks):
    for role, tok in toks.items():
        text = tok.apply_chat_template(CHAT, tokenize=False)
        tokens = tok.convert_ids_to_tokens(tok.encode(text))
        for special in {"student": ("<|im_start|>", "<|im_end|>", "<think>", "</think>"),
                        "teacher_b": ("<|im_start|>", "<|im_end|>"),
                        "teacher_a": ("<role>", "</role>", "<|role_end|>")}[role]:
            assert tokens.count(special) == text.count(special) > 0, (role, special)


def test_unknown_role_in_chat_is_an_error(toks):
    for tok in toks.values():
        with pytest.raises(Exception, match="unsupported role"):
            tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_right_padding_with_pad_id(toks):
    for tok in toks.values():
        batch = tok(["What", "What is 2 + 3?"], padding=True)
        short = batch["input_ids"][0]
        n = len(tok.encode("What"))
        assert short[:n] == tok.encode("What")
        assert set(short[n:]) == {tok.pad_token_id}
        assert batch["attention_mask"][0] == [1] * n + [0] * (len(short) - n)


# --- metadata, determinism, config ---------------------------------------------------------------
def test_metadata_json_matches_the_tokenizer(trained, toks):
    for role, path in trained[0].items():
        meta = json.loads((path / META_FILE).read_text())
        mismatch = meta.pop("word_mismatch_vs_student")
        assert meta == tokenizer_meta(toks[role])
        assert meta["role"] == role
        assert meta["chat_style"] == {"student": "qwen3", "teacher_b": "chatml", "teacher_a": "llada2"}[role]
        assert meta["mask_token_id"] == toks[role].mask_token_id
        assert meta["vocab_size"] == len(toks[role])
        assert {"mask_token", "eos", "pad", "shared_vocab_size"} <= set(meta)
        assert (mismatch == 0.0) == (role != "teacher_a")


def test_training_is_deterministic(corpus, tmp_path, trained):
    again = train_tokenizers(list(corpus), tmp_path / "again", {})
    for role, path in trained[0].items():
        files = sorted(p.name for p in path.iterdir())
        assert files == sorted(p.name for p in again[role].iterdir())
        for name in files:
            assert (path / name).read_bytes() == (again[role] / name).read_bytes(), (role, name)


def test_small_vocab_sizes_are_respected(corpus, tmp_path):
    cfg = {"student": {"vocab_size": 400}, "teacher_a": {"vocab_size": 330, "max_token_bytes": None}}
    paths = train_tokenizers(corpus, tmp_path, cfg)
    assert len(load_tokenizer(paths["student"])) == 400
    assert len(load_tokenizer(paths["teacher_a"])) == 330


@pytest.mark.parametrize(
    "cfg, key",
    [({"student": {"vocab_sise": 10}}, "vocab_sise"), ({"teacher_c": {}}, "teacher_c"),
     ({"teacher_b": {"vocab_size": 10}}, "vocab_size"), ({"student": {"vocab_size": 100}}, "vocab_size"),
     ({"teacher_b": {"mask_token": "<|im_end|>"}}, "mask_token")],
)
def test_bad_config_is_rejected_by_name(cfg, key, corpus, tmp_path):
    with pytest.raises(ValueError, match=key):
        train_tokenizers(corpus[:10], tmp_path, cfg)
    assert not any(tmp_path.iterdir()), "nothing may be written on a config error"


def test_schema_agrees_with_the_code(repo):
    schema_path = repo / "workflow" / "schemas" / "tokenizers.schema.yaml"
    resolved = validate_config({}, schema_path)
    assert resolved.pop("pretrained") == {"student": None, "teacher_b": None, "teacher_a": None}
    assert resolved == DEFAULTS
    schema = yaml.safe_load(schema_path.read_text())

    def walk(node, where):
        if node.get("type") == "object":
            assert node.get("additionalProperties") is False, where
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub and "default" in sub, f"{where}.{key}"
            walk(sub, f"{where}.{key}")

    walk(schema, "tokenizers")
    with pytest.raises(ConfigError, match="vocab_sise"):
        validate_config({"teacher_a": {"vocab_sise": 3}}, schema_path)
    allowed = schema["properties"]["teacher_b"]["properties"]["mask_token"]["enum"]
    assert allowed == [t for t, _ in QWEN3_SPECIALS[3:]]


# --- load_tokenizer -------------------------------------------------------------------------------
def _copy_without_mask(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    config_path = dst / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("mask_token")
    config_path.write_text(json.dumps(config))
    assert AutoTokenizer.from_pretrained(dst).mask_token is None
    return dst


def test_load_tokenizer_appends_a_missing_mask(trained, toks, tmp_path):
    paths = trained[0]
    plain = _copy_without_mask(paths["teacher_b"], tmp_path / "qwen_like")  # no <|mask|> in vocab
    tok = load_tokenizer(plain)
    assert tok.mask_token == "<|mask|>"
    assert tok.mask_token_id == len(toks["teacher_b"]) == toks["student"].mask_token_id
    assert len(tok) == len(toks["teacher_b"]) + 1
    assert tok.decode(tok.encode("a <|mask|> b")) == "a <|mask|> b"
    # an existing token is reused, nothing appended
    tok = load_tokenizer(plain, mask_token="<tool_response>")
    assert tok.mask_token_id == toks["teacher_b"].mask_token_id and len(tok) == len(toks["teacher_b"])
    tok = load_tokenizer(_copy_without_mask(paths["student"], tmp_path / "has_mask"))
    assert tok.mask_token_id == toks["student"].mask_token_id and len(tok) == len(toks["student"])
    # a tokenizer that has a mask keeps it
    assert load_tokenizer(paths["teacher_a"]).mask_token_id == toks["teacher_a"].mask_token_id
    assert load_tokenizer(str(paths["teacher_b"])).mask_token == "<tool_response>"


def test_load_tokenizer_errors_name_the_path(tmp_path):
    missing = tmp_path / "no_such_tokenizer"
    with pytest.raises(FileNotFoundError, match="no_such_tokenizer"):
        load_tokenizer(missing)
    with pytest.raises(FileNotFoundError, match="no_such_tokenizer"):
        load_tokenizer(str(missing))
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(TokenizerLoadError, match="empty_dir"):
        load_tokenizer(empty)
    broken = tmp_path / "broken_dir"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerLoadError, match="broken_dir"):
        load_tokenizer(broken)


def test_load_tokenizer_checks_the_role(trained):
    """A stage that needs one role's tokenizer refuses another's (told apart by its chat template),
    naming the directory and both roles."""
    paths = trained[0]
    for role in ROLES:
        assert load_tokenizer(paths[role], role=role).chat_template == load_tokenizer(paths[role]).chat_template
    for given, needed in (("student", "teacher_b"), ("teacher_b", "student"), ("teacher_a", "student")):
        with pytest.raises(TokenizerLoadError, match=rf"{paths[given]} holds the {given} .* not the {needed}"):
            load_tokenizer(paths[given], role=needed)


# --- corpus reading -------------------------------------------------------------------------------
def test_corpus_texts_reads_all_splits(tmp_path):
    (tmp_path / "pretrain.jsonl").write_text(json.dumps({"text": "plain text"}) + "\n\n")
    chat = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}
    (tmp_path / "sft.jsonl").write_text(json.dumps(chat) + "\n")
    (tmp_path / "distill.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}))
    assert list(corpus_texts(tmp_path)) == ["plain text", "Hi?", "Hello.", "x"]


def test_corpus_texts_errors_name_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list(corpus_texts(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="pretrain.jsonl"):
        list(corpus_texts(tmp_path))
    (tmp_path / "pretrain.jsonl").write_text('{"text": "ok"}\n{"txt": "typo"}\n')
    with pytest.raises(ValueError, match=r"pretrain.jsonl:2"):
        list(corpus_texts(tmp_path))
    (tmp_path / "pretrain.jsonl").write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(ValueError, match=r"pretrain.jsonl:2: not valid JSON"):
        list(corpus_texts(tmp_path))


def test_training_from_corpus_files(tmp_path, corpus):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "pretrain.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus[:300]))
    paths = train_tokenizers(corpus_texts(corpus_dir), tmp_path / "tok", {})
    tok = load_tokenizer(paths["student"])
    assert tok.decode(tok.encode(corpus[0])) == corpus[0]
    with pytest.raises(ValueError, match="empty"):
        train_tokenizers([], tmp_path / "none", {})


def test_fetch_tokenizers_from_local_release_dirs(corpus, tmp_path):
    """Paper-scale path (released tokenizers) exercised on local directories of the same format."""
    from tide.pretrained_tokenizers import fetch_tokenizers

    released = train_tokenizers(corpus, tmp_path / "released", {})
    out = fetch_tokenizers({role: str(path) for role, path in released.items()}, tmp_path / "fetched")
    for role, path in out.items():
        meta = json.loads((path / META_FILE).read_text())
        original = json.loads((released[role] / META_FILE).read_text())
        assert meta["mask_token"] == original["mask_token"]
        assert meta["mask_token_id"] == original["mask_token_id"]
    assert json.loads((out["teacher_b"] / META_FILE).read_text())["mask_token"] == "<tool_response>"
    with pytest.raises(ValueError, match="teacher_a"):
        fetch_tokenizers({"student": str(released["student"]), "teacher_b": "x"}, tmp_path / "f2")
