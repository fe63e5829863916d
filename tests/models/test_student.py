"""Tests of the BD3LM student: a2d conversion, mask handling, save/load through the Auto classes."""

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, Qwen3ForCausalLM

from tide.models.student import (
    A2DQwen3LMHeadModel,
    A2DQwen3Model,
    a2d_convert,
    student_config,
)

torch.set_num_threads(1)

VOCAB, PAD, EOS, MASK = 64, 0, 1, 2


@pytest.fixture()
def ar_model() -> Qwen3ForCausalLM:
    torch.manual_seed(0)
    config = student_config(VOCAB, PAD, EOS, size="unit", initializer_range=0.2)
    return Qwen3ForCausalLM(config).eval()


@pytest.fixture()
def ids() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(3, VOCAB, (2, 9))


def logits(model, ids, **kw) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, **kw).logits


def test_tiny_size_parameter_count():
    model = Qwen3ForCausalLM(student_config(1100, PAD, EOS, size="tiny"))
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 928_640  # tied embeddings counted once
    assert 300_000 <= n_params <= 1_000_000


def test_student_config_kinds():
    ar = student_config(VOCAB, PAD, EOS, size="unit")
    a2d = student_config(VOCAB, PAD, EOS, size="unit", a2d=True)
    assert (ar.model_type, a2d.model_type) == ("qwen3", "a2d-qwen3")
    assert a2d.tie_word_embeddings and a2d.max_position_embeddings == 512
    with pytest.raises(ValueError, match="unknown student size"):
        student_config(VOCAB, PAD, EOS, size="huge")


def test_convert_copies_weights_exactly(ar_model):
    ar_model.config.architectures = ["Qwen3ForCausalLM"]
    ar_model.config.auto_map = {"AutoModelForCausalLM": "x.Y"}
    model = a2d_convert(ar_model, mask_id=MASK)
    assert isinstance(model, A2DQwen3LMHeadModel)
    assert model.config.model_type == "a2d-qwen3"
    assert model.config.architectures is None
    assert getattr(model.config, "auto_map", None) is None
    ar_state, state = ar_model.state_dict(), model.state_dict()
    assert ar_state.keys() == state.keys()
    for name, tensor in ar_state.items():
        assert torch.equal(tensor, state[name]), name
        assert tensor.data_ptr() != state[name].data_ptr(), (
            f"{name} shares storage with the AR model"
        )
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_convert_rejects_mask_id_outside_vocab(ar_model):
    with pytest.raises(ValueError, match="mask id 64 has no embedding row"):
        a2d_convert(ar_model, mask_id=VOCAB)


def test_no_mask_is_full_attention(ar_model, ids):
    model = a2d_convert(ar_model)
    full = torch.ones(2, 1, 9, 9, dtype=torch.bool)
    torch.testing.assert_close(logits(model, ids), logits(model, ids, attention_mask=full))
    ar_logits = logits(ar_model, ids)
    a2d_logits = logits(model, ids)
    assert (a2d_logits - ar_logits).abs().amax(dim=-1).min() > 1e-3  # every position differs
    # Full attention: position 0 depends on later tokens, unlike in the AR model.
    later = ids.clone()
    later[:, -1] = (later[:, -1] + 1) % VOCAB
    assert (logits(model, later)[:, 0] - a2d_logits[:, 0]).abs().amax() > 1e-3
    torch.testing.assert_close(logits(ar_model, later)[:, 0], ar_logits[:, 0])


def test_4d_causal_mask_reproduces_the_ar_model(ar_model, ids):
    model = a2d_convert(ar_model)
    causal = torch.ones(9, 9, dtype=torch.bool).tril()[None, None].expand(2, 1, 9, 9)
    torch.testing.assert_close(
        logits(model, ids, attention_mask=causal), logits(ar_model, ids), rtol=1e-4, atol=1e-5
    )


def test_padding_mask_hides_padded_keys(ar_model, ids):
    model = a2d_convert(ar_model)
    padding = torch.ones(2, 9, dtype=torch.long)
    padding[0, :3] = 0
    hidden = padding.bool()[:, None, None, :].expand(2, 1, 9, 9)
    additive = torch.zeros(2, 1, 9, 9).masked_fill(~hidden, torch.finfo(torch.float32).min)
    expected = logits(model, ids, attention_mask=hidden)
    torch.testing.assert_close(logits(model, ids, attention_mask=padding), expected)
    torch.testing.assert_close(logits(model, ids, attention_mask=additive), expected)
    # Changing a padded token changes nothing for the other positions.
    other = ids.clone()
    other[0, 1] = 5
    torch.testing.assert_close(
        logits(model, other, attention_mask=padding)[0, 3:], expected[0, 3:], rtol=1e-5, atol=1e-6
    )


def test_eager_refuses_bool_masks(ar_model, ids):
    model = a2d_convert(ar_model)
    model.set_attn_implementation("eager")
    full = torch.ones(2, 1, 9, 9, dtype=torch.bool)
    with pytest.raises(ValueError, match="needs attn_implementation='sdpa'"):
        logits(model, ids, attention_mask=full)
    # additive float masks are fine with eager
    logits(model, ids, attention_mask=torch.zeros(2, 1, 9, 9))


def test_cached_prefix_matches_full_forward(ar_model, ids):
    """A passed cache is appended to even with use_cache=False; block rows equal a full forward."""
    model = a2d_convert(ar_model)
    blocks = torch.arange(9) // 3
    mask = (blocks[None, :] <= blocks[:, None])[None, None].expand(2, 1, 9, 9)
    pos = torch.arange(9)[None].expand(2, -1)
    full = logits(model, ids, attention_mask=mask, position_ids=pos)
    with torch.no_grad():
        cache = model(
            input_ids=ids[:, :6],
            attention_mask=mask[:, :, :6, :6],
            position_ids=pos[:, :6],
            use_cache=True,
        ).past_key_values
        block = model(
            input_ids=ids[:, 6:],
            attention_mask=mask[:, :, 6:],
            position_ids=pos[:, 6:],
            past_key_values=cache,
            use_cache=False,
        ).logits
    torch.testing.assert_close(block, full[:, 6:], rtol=1e-4, atol=1e-5)
    assert cache.get_seq_length() == 9


def test_save_load_round_trip(ar_model, ids, tmp_path):
    model = a2d_convert(ar_model)
    model.save_pretrained(tmp_path / "student")
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "student").eval()
    assert type(loaded) is A2DQwen3LMHeadModel
    assert loaded.config.model_type == "a2d-qwen3"
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    base = AutoModel.from_pretrained(tmp_path / "student")
    assert type(base) is A2DQwen3Model


def test_convert_from_directory(ar_model, ids, tmp_path):
    ar_model.save_pretrained(tmp_path / "ar")
    (tmp_path / "ar" / "tokenizer.json").write_text('{"stub": true}')
    model = a2d_convert(tmp_path / "ar", tmp_path / "a2d", mask_id=MASK)
    assert (tmp_path / "a2d" / "tokenizer.json").read_text() == '{"stub": true}'
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "a2d").eval()
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    for name, tensor in ar_model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_convert_reports_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        a2d_convert(tmp_path / "nowhere")


def test_right_shift_flag_is_stored_with_the_checkpoint(ar_model, tmp_path):
    from tide.diffusion import uses_right_shift

    assert not uses_right_shift(a2d_convert(ar_model))  # dllm's default: off
    a2d_convert(ar_model, tmp_path / "shifted", right_shift_logits=True)
    assert uses_right_shift(A2DQwen3LMHeadModel.from_pretrained(tmp_path / "shifted"))
