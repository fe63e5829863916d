"""WeDLM streaming decoding with a KV cache of the committed context equals the cache-free
reference `wedlm_generate` token for token."""

import pytest
import torch

from tide.models.configs import wedlm_unit_config
from tide.models.wedlm import WeDLMForCausalLM
from tide.sampling.teachers import wedlm_generate, wedlm_generate_cached

torch.set_num_threads(1)

VOCAB, MASK, STOP = 320, 2, 3


@pytest.fixture(scope="module")
def wedlm() -> WeDLMForCausalLM:
    torch.manual_seed(0)
    config = wedlm_unit_config(VOCAB, pad_token_id=0, mask_token_id=MASK, eos_token_id=1)
    config.initializer_range = 0.2  # spread logits: varied entropies, no near-ties
    config._attn_implementation = "sdpa"
    return WeDLMForCausalLM(config).eval()


@pytest.mark.parametrize(
    "window,tau,penalty",
    [(4, 0.4, 0.02), (6, 3.0, 0.1), (16, 6.0, 0.0), (3, 0.0, 0.0)],
    ids=["paper", "parallel", "wide-window", "one-per-round"],
)
def test_cached_streaming_equals_the_reference(wedlm, window, tau, penalty):
    generator = torch.Generator().manual_seed(window)
    parallel_rounds = 0
    for _ in range(8):
        prompt = torch.randint(4, VOCAB, (int(torch.randint(1, 20, (1,), generator=generator)),),
                               generator=generator)
        kw = {"max_new": 24, "window": window, "entropy_threshold": tau,
              "distance_penalty": penalty, "mask_id": MASK, "stop_ids": {STOP}}
        expected = wedlm_generate(wedlm, prompt, **kw)
        assert torch.equal(wedlm_generate_cached(wedlm, prompt, **kw), expected)
        parallel_rounds += len(expected)
    assert parallel_rounds > 0


def test_cached_streaming_stops_at_a_stop_id(wedlm):
    prompt = torch.tensor([5, 6, 7, 8])
    kw = {"max_new": 30, "window": 4, "entropy_threshold": 6.0, "distance_penalty": 0.0,
          "mask_id": MASK}
    free = wedlm_generate(wedlm, prompt, **kw)
    stop = int(free[5])
    expected = wedlm_generate(wedlm, prompt, stop_ids={stop}, **kw)
    got = wedlm_generate_cached(wedlm, prompt, stop_ids={stop}, **kw)
    assert torch.equal(got, expected) and int(got[-1]) == stop and len(got) <= 6


def test_cached_streaming_rejects_batches_and_shifted_models(wedlm):
    kw = {"max_new": 4, "window": 4, "entropy_threshold": 0.4, "distance_penalty": 0.0,
          "mask_id": MASK}
    with pytest.raises(ValueError, match="one prompt at a time"):
        wedlm_generate_cached(wedlm, torch.tensor([[5, 6], [7, 8]]), **kw)
    wedlm.config.right_shift_logits = True
    try:
        with pytest.raises(ValueError, match="right_shift_logits"):
            wedlm_generate_cached(wedlm, torch.tensor([5, 6]), **kw)
    finally:
        wedlm.config.right_shift_logits = False
