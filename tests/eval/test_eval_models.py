"""Our lm-eval model classes: trimming, chunking, chat template, argument handling, and each
class's generate_until against a direct call of its sampler (or a slow greedy loop for the AR)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from tide.eval import models
from tide.eval.models import (
    THINK_BLOCK,
    AREvalModel,
    BD3LMEvalModel,
    EvalModelError,
    LLaDA2EvalModel,
    WeDLMEvalModel,
    trim_generation,
)
from tide.tokenization import load_tokenizer

torch.set_num_threads(1)

PROMPTS = ["Q: Ann has 3 apples.\nA:", "What is the capital of Gafo?\nA. Vekuth\nAnswer:", "Hi"]


def request(context: str, **gen_kwargs) -> SimpleNamespace:
    return SimpleNamespace(args=(context, gen_kwargs))


def reference_trim(ids: list[int], tok, stop_ids: set[int], until: list[str]) -> str:
    """Slow reference of the paper's trimming: loops instead of regex / split."""
    cut = len(ids)
    for i, t in enumerate(ids):
        if t in stop_ids:
            cut = i
            break
    text = tok.decode(ids[:cut], skip_special_tokens=True)
    for name in (tok.eos_token, "<|im_end|>"):
        if name in text:
            text = text[: text.index(name)]
    while "<think>" in text and "</think>" in text[text.index("<think>") :]:
        start = text.index("<think>")
        end = text.index("</think>", start) + len("</think>")
        while end < len(text) and text[end].isspace():
            end += 1
        text = text[:start] + text[end:]
    for stop in until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def test_trim_matches_a_slow_reference_on_random_sequences(tokenizer_dirs):
    tok = load_tokenizer(tokenizer_dirs["student"])
    stops = models.stop_token_ids(tok)
    assert stops == {tok.convert_tokens_to_ids("<|im_end|>")}
    specials = [
        tok.convert_tokens_to_ids(t)
        for t in ("<think>", "</think>", "<|im_end|>", "<|endoftext|>", "<|mask|>")
    ]
    newline = tok.encode("\n\n")
    rng = random.Random(0)
    for _ in range(300):
        ids = [rng.randrange(0, 300) for _ in range(rng.randint(0, 30))]
        for _ in range(rng.randint(0, 4)):
            ids.insert(rng.randint(0, len(ids)), rng.choice(specials + newline))
        until = rng.sample(["\n", "Q", "e", "</s>", "", "xyz"], rng.randint(0, 3))
        assert trim_generation(ids, tok, stops, until) == reference_trim(ids, tok, stops, until)


def test_think_block_is_dropped_and_output_cut_at_eos(tokenizer_dirs):
    tok = load_tokenizer(tokenizer_dirs["student"])
    stops = models.stop_token_ids(tok)
    ids = tok.encode("<think>\nplan\n</think>\n\nB. yes<|im_end|>C", add_special_tokens=False)
    assert trim_generation(ids, tok, stops, []) == "B. yes"
    assert trim_generation(ids, tok, stops, ["."]) == "B"
    assert models.with_think_block("x" + THINK_BLOCK) == "x" + THINK_BLOCK
    assert models.with_think_block("x") == "x" + THINK_BLOCK


@pytest.fixture(scope="module")
def student(student_dir):
    return BD3LMEvalModel(pretrained=str(student_dir), batch_size=2, block_size=4, seed=0)


def test_chunks_keep_order_batch_size_and_one_generation_length(student):
    lengths = [4, 4, 4, 64, 64, 4]
    reqs = [request(f"p{i}", max_gen_toks=n) for i, n in enumerate(lengths)]
    chunks = [(n, [r.args[0] for r in chunk]) for n, chunk in student._chunks(reqs)]
    assert chunks == [(4, ["p0", "p1"]), (4, ["p2"]), (64, ["p3", "p4"]), (4, ["p5"])]


def test_chat_template_thinking_off_and_gen_prefix_continues_the_turn(student, tokenizer_dirs):
    tok = load_tokenizer(tokenizer_dirs["student"])
    user = [{"role": "user", "content": "Q: 1+1?\nA:"}]
    prompt = student.apply_chat_template(user)
    assert prompt == tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n" + THINK_BLOCK)
    prefix = "```python\n"
    continued = student.apply_chat_template(
        user + [{"role": "assistant", "content": prefix}], add_generation_prompt=False
    )
    assert continued == prompt + prefix
    # the think block is already there: nothing is injected twice
    assert student.encode_context(prompt) == tok(prompt, add_special_tokens=False)["input_ids"]
    assert student.encode_context("plain") == tok("plain" + THINK_BLOCK)["input_ids"]
    assert student.tokenizer_name and student.chat_template() == tok.chat_template


def test_generate_until_equals_direct_sampler_call(student, tokenizer_dirs):
    from tide.sampling import generate

    tok = load_tokenizer(tokenizer_dirs["student"])
    contexts = [student.apply_chat_template([{"role": "user", "content": p}]) for p in PROMPTS]
    until = ["\n"]
    got = student.generate_until([request(c, until=until, max_gen_toks=8) for c in contexts])
    # independent pipeline: tokenize, left-pad each chunk (batch 2), sample, trim
    expected = []
    generator = torch.Generator().manual_seed(0)
    for chunk in (contexts[:2], contexts[2:]):
        ids = [tok(c, add_special_tokens=False)["input_ids"] for c in chunk]
        width = max(map(len, ids))
        batch = torch.tensor([[tok.pad_token_id] * (width - len(i)) + i for i in ids])
        out = generate(
            student.model,
            batch,
            gen_length=8,
            steps=8,
            block_size=4,
            mask_id=tok.mask_token_id,
            eos_id=tok.eos_token_id,
            pad_id=tok.pad_token_id,
            generator=generator,
        )
        stops = {tok.eos_token_id}
        expected += [reference_trim(row, tok, stops, until) for row in out.tolist()]
    assert got == expected
    assert all("<|mask|>" not in text for text in got)


def test_generation_length_and_steps_follow_model_args_then_task(student_dir, monkeypatch):
    import tide.sampling

    calls = []

    def spy(model, prompt_ids, **kw):
        calls.append((prompt_ids.shape[0], kw["gen_length"], kw["steps"], kw["block_size"]))
        return torch.zeros(prompt_ids.shape[0], kw["gen_length"], dtype=torch.long)

    monkeypatch.setattr(tide.sampling, "generate", spy)
    reqs = [request("a", max_gen_toks=4), request("b", max_gen_toks=64), request("c")]
    BD3LMEvalModel(pretrained=str(student_dir), block_size=16).generate_until(reqs)
    assert calls == [(1, 4, 4, 16), (1, 64, 64, 16), (1, 256, 256, 16)]
    calls.clear()
    lm = BD3LMEvalModel(pretrained=str(student_dir), batch_size=3, max_new_tokens=12, steps=6)
    lm.generate_until(reqs)
    assert calls == [(3, 12, 6, 32)]
    info = lm.get_model_info()["tide_model"]
    assert info["sampler"] == {
        "method": "cached",
        "steps": 6,
        "block_size": 32,
        "remasking": "low_confidence",
        "temperature": 0.0,
    }
    assert info["gen_length"] == 12 and info["seed"] == 0 and info["model_type"] == "a2d-qwen3"


def test_loglikelihood_is_refused_clearly(student):
    with pytest.raises(NotImplementedError, match="generative tasks only"):
        student.loglikelihood([])
    with pytest.raises(NotImplementedError, match="generative tasks only"):
        student.loglikelihood_rolling([])


def test_bad_arguments_and_checkpoints_are_named(student_dir, ar_dir, tmp_path):
    with pytest.raises(EvalModelError, match=r"unknown model args \['blok_size'\]"):
        BD3LMEvalModel(pretrained=str(student_dir), blok_size=4)
    with pytest.raises(EvalModelError, match="remasking"):
        BD3LMEvalModel(pretrained=str(student_dir), remasking="best")
    with pytest.raises(EvalModelError, match="batch_size"):
        BD3LMEvalModel(pretrained=str(student_dir), batch_size="auto")
    with pytest.raises(EvalModelError, match=f"{ar_dir}.*expected 'a2d-qwen3'"):
        BD3LMEvalModel(pretrained=str(ar_dir))
    with pytest.raises(EvalModelError, match="missing checkpoint directory"):
        BD3LMEvalModel(pretrained=str(tmp_path / "nothing"))


def greedy_reference(model, ids: list[int], steps: int, stops: set[int]) -> list[int]:
    """Slow greedy decoding: full causal forward each step, no cache, no padding."""
    out: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1]
            token = int(logits.argmax())
            out.append(token)
            if token in stops:
                break
    return out


def test_ar_generate_until_equals_a_slow_greedy_loop(ar_dir):
    lm = AREvalModel(pretrained=str(ar_dir), batch_size=3)
    contexts = [lm.apply_chat_template([{"role": "user", "content": p}]) for p in PROMPTS]
    got = lm.generate_until([request(c, until=[], max_gen_toks=6) for c in contexts])
    expected = []
    for c in contexts:
        ids = lm.tokenizer(c, add_special_tokens=False)["input_ids"]
        gen = greedy_reference(lm.model, ids, 6, lm.stop_ids)
        expected.append(reference_trim(gen, lm.tokenizer, lm.stop_ids, []))
    assert got == expected


def test_llada2_generate_until_equals_direct_sampler_calls(llada2_dir):
    from tide.sampling.teachers import llada2_generate

    lm = LLaDA2EvalModel(
        pretrained=str(llada2_dir), batch_size=3, block_size=4, steps=2, threshold=0.9
    )
    assert not lm.inject_think  # LLaDA2 role-tag template has no think block
    contexts = [lm.apply_chat_template([{"role": "user", "content": p}]) for p in PROMPTS]
    assert contexts[0].endswith("<role>ASSISTANT</role>")
    got = lm.generate_until([request(c, until=["\n"], max_gen_toks=8) for c in contexts])
    tok = lm.tokenizer
    expected = []
    for c in contexts:
        ids = torch.tensor([tok(c, add_special_tokens=False)["input_ids"]])
        (row,) = llada2_generate(
            lm.model,
            ids,
            gen_length=8,
            block_size=4,
            steps=2,
            threshold=0.9,
            mask_id=tok.mask_token_id,
            eos_id=tok.eos_token_id,
        )
        expected.append(reference_trim(row.tolist(), tok, lm.stop_ids, ["\n"]))
    assert got == expected
    assert tok.convert_tokens_to_ids("<|role_end|>") in lm.stop_ids


def test_wedlm_generate_until_equals_direct_sampler_calls(wedlm_dir):
    from tide.sampling.teachers import wedlm_generate

    lm = WeDLMEvalModel(
        pretrained=str(wedlm_dir),
        batch_size=2,
        window=4,
        entropy_threshold=2.0,
        distance_penalty=0.1,
    )
    tok = lm.tokenizer
    assert tok.mask_token == "<tool_response>" and not lm.inject_think
    assert lm.stop_ids == {tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    contexts = [lm.apply_chat_template([{"role": "user", "content": p}]) for p in PROMPTS[:2]]
    got = lm.generate_until([request(c, until=[], max_gen_toks=7) for c in contexts])
    expected = []
    for c in contexts:
        ids = torch.tensor(tok(c, add_special_tokens=False)["input_ids"])
        row = wedlm_generate(
            lm.model,
            ids,
            max_new=7,
            window=4,
            entropy_threshold=2.0,
            distance_penalty=0.1,
            mask_id=tok.mask_token_id,
            stop_ids=lm.stop_ids,
        )
        expected.append(reference_trim(row.tolist(), tok, lm.stop_ids, []))
    assert got == expected
    assert lm.get_model_info()["tide_model"]["sampler"] == {
        "method": "cached",
        "window": 4,
        "entropy_threshold": 2.0,
        "distance_penalty": 0.1,
    }


def test_wedlm_block_decoder_equals_the_reference_bd3lm_sampler(wedlm_dir):
    from tide.sampling import generate

    lm = WeDLMEvalModel(pretrained=str(wedlm_dir), batch_size=2, decoder="block", block_size=4)
    tok = lm.tokenizer
    contexts = [lm.apply_chat_template([{"role": "user", "content": p}]) for p in PROMPTS[:2]]
    got = lm.generate_until([request(c, until=[], max_gen_toks=8) for c in contexts])
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in contexts]
    rows = generate(lm.model, lm.left_padded(ids), gen_length=8, steps=8, block_size=4,
                    mask_id=tok.mask_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    assert got == [reference_trim(r, tok, lm.stop_ids, []) for r in rows.tolist()]
    assert lm.get_model_info()["tide_model"]["sampler"] == {
        "decoder": "block", "method": "cached", "block_size": 4, "steps": None}
    with pytest.raises(EvalModelError, match="decoder"):
        WeDLMEvalModel(pretrained=str(wedlm_dir), decoder="stream")
