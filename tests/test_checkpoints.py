"""Paper-scale preparation of released checkpoints (tide.checkpoints): fetched from a local
directory here, verified (model_type, parameter count, sha256, likelihood) and saved."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from transformers import Qwen3ForCausalLM

from tide.checkpoints import VerificationError, count_parameters, prepare_pretrained
from tide.models.student import student_config
from tide.tokenization import train_tokenizers

ROWS = [{"messages": [{"role": "user", "content": f"Count to {n}."},
                      {"role": "assistant", "content": " ".join(str(i) for i in range(1, n + 1))}]}
        for n in (5, 6, 7, 8)]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    texts = [m["content"] for r in ROWS for m in r["messages"]] * 20
    return train_tokenizers(texts, out, {"student": {"vocab_size": 300},
                                         "teacher_a": {"vocab_size": 300}})["student"]


def _ar_model(tokenizer_dir, steps: int):
    """A unit-size AR Qwen3, trained ``steps`` Adam steps on the rows (0: random weights)."""
    from tide.tokenization import load_tokenizer
    from tide.training.data import chat_example

    tok = load_tokenizer(tokenizer_dir)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(student_config(len(tok), tok.pad_token_id, tok.eos_token_id,
                                            size="unit"))
    batch = [chat_example(tok, r["messages"], 64) for r in ROWS]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        for ex in batch:
            ids = torch.tensor([ex["input_ids"]])
            loss = model(input_ids=ids, labels=torch.tensor([ex["labels"]])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    return model


@pytest.fixture(scope="module")
def released(tmp_path_factory, tokenizer_dir):
    """A 'released' AR checkpoint (trained on the rows) in a local directory."""
    path = tmp_path_factory.mktemp("released") / "qwen3"
    _ar_model(tokenizer_dir, steps=30).save_pretrained(path)
    return path


def test_prepared_checkpoint_is_verified_and_recorded(released, tokenizer_dir, tmp_path):
    n = Qwen3ForCausalLM.from_pretrained(released).num_parameters()  # tied: the embedding once
    record = prepare_pretrained(str(released), tmp_path / "out", kind="qwen3",
                                expect={"model_type": "qwen3", "parameters": n},
                                tokenizer_dir=tokenizer_dir, rows=ROWS, query="causal", block_size=4)
    weights = released / "model.safetensors"
    assert record["parameters"] == count_parameters([weights]) == n
    assert record["sha256"] == {"model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert record["likelihood"]["assistant_nll"] < record["likelihood"]["bound"]
    out = tmp_path / "out"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert json.loads((out / "verification.json").read_text())["parameters"] == n
    reloaded = Qwen3ForCausalLM.from_pretrained(out)
    for name, value in Qwen3ForCausalLM.from_pretrained(released).state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], value), name


@pytest.mark.parametrize("expect, match", [
    ({"model_type": "wedlm"}, "model_type 'qwen3', expected 'wedlm'"),
    ({"model_type": "qwen3", "parameters": 10**9}, "parameters, expected 1,000,000,000"),
])
def test_wrong_checkpoint_is_refused_by_name(released, tokenizer_dir, tmp_path, expect, match):
    with pytest.raises(VerificationError, match=match):
        prepare_pretrained(str(released), tmp_path / "out", kind="qwen3", expect=expect,
                           tokenizer_dir=tokenizer_dir, rows=ROWS, query="causal", block_size=4)
    assert not (tmp_path / "out").exists()


def test_untrained_weights_fail_the_likelihood_check(tokenizer_dir, tmp_path):
    path = tmp_path / "random"
    _ar_model(tokenizer_dir, steps=0).save_pretrained(path)
    with pytest.raises(VerificationError, match="not a trained model"):
        prepare_pretrained(str(path), tmp_path / "out", kind="qwen3", expect={},
                           tokenizer_dir=tokenizer_dir, rows=ROWS, query="causal", block_size=4)
    assert not (tmp_path / "out").exists()


def test_diffusion_checkpoint_is_scored_at_masked_positions(tokenizer_dir, tmp_path):
    """The a2d student (same weights, no causal mask) is queried with masks, not next tokens."""
    from tide.models.student import a2d_convert
    from tide.tokenization import load_tokenizer, tokenizer_meta

    trained = _ar_model(tokenizer_dir, steps=30)
    mask_id = tokenizer_meta(load_tokenizer(tokenizer_dir))["mask_token_id"]
    a2d_convert(trained, tmp_path / "a2d", mask_id=mask_id, right_shift_logits=True)
    record = prepare_pretrained(str(tmp_path / "a2d"), tmp_path / "out", kind="student",
                                expect={"model_type": "a2d-qwen3"}, tokenizer_dir=tokenizer_dir,
                                rows=ROWS, query="student", block_size=4)
    assert record["model_type"] == "a2d-qwen3" and record["likelihood"]["query"] == "student"
    assert record["likelihood"]["assistant_nll"] < record["likelihood"]["bound"]
