"""Tests for CompDemo: complementary split, chunk expansion, two-pass teacher-logit combination."""

from __future__ import annotations

import pytest
import torch

from tide.distill import compdemo_combine, compdemo_split, compdemo_split_chunks, expand_chunks

torch.set_num_threads(1)

MASK_ID = 99
VOCAB = 6


def fake_teacher(input_ids: torch.Tensor, pass_id: int) -> torch.Tensor:
    """Logits ``[B, L, VOCAB]`` that record the pass, whether the slot was masked, and its index."""
    batch, length = input_ids.shape
    logits = torch.zeros(batch, length, VOCAB)
    logits[..., 0] = pass_id
    logits[..., 1] = (input_ids == MASK_ID).float()
    logits[..., 2] = torch.arange(length).float()
    return logits


def test_split_is_partition_and_follows_ratio() -> None:
    gen = torch.Generator().manual_seed(0)
    masked = torch.rand(64, 512, generator=gen) < 0.4
    for ratio in (0.5, 0.3):
        part_a, part_b = compdemo_split(masked, ratio, torch.Generator().manual_seed(1))
        assert part_a.dtype == torch.bool and part_b.dtype == torch.bool
        assert torch.equal(part_a | part_b, masked)
        assert not (part_a & part_b).any()
        fraction = part_a.sum().item() / masked.sum().item()
        assert abs(fraction - ratio) < 0.01


def test_split_draw_and_extreme_ratios() -> None:
    masked = torch.rand(3, 20, generator=torch.Generator().manual_seed(2)) < 0.6
    part_a, part_b = compdemo_split(masked, 0.5, torch.Generator().manual_seed(3))
    r = torch.rand(3, 20, generator=torch.Generator().manual_seed(3))
    for b in range(3):
        for i in range(20):
            assert bool(part_a[b, i]) == (bool(masked[b, i]) and float(r[b, i]) < 0.5)
            assert bool(part_b[b, i]) == (bool(masked[b, i]) and not float(r[b, i]) < 0.5)
    all_b = compdemo_split(masked, 0.0, torch.Generator().manual_seed(3))
    assert not all_b[0].any() and torch.equal(all_b[1], masked)
    all_a = compdemo_split(masked, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(all_a[0], masked) and not all_a[1].any()
    with pytest.raises(ValueError, match="ratio"):
        compdemo_split(masked, 1.5, None)


@pytest.mark.parametrize("inplace", [False, True])
def test_token_level_every_position_read_from_its_masked_pass(inplace: bool) -> None:
    gen = torch.Generator().manual_seed(4)
    batch, length = 4, 40
    y0 = torch.randint(0, 50, (batch, length), generator=gen)
    masked = torch.rand(batch, length, generator=gen) < 0.5
    part_a, part_b = compdemo_split(masked, 0.5, gen)
    assert part_a.any() and part_b.any()

    pass1 = fake_teacher(torch.where(part_b, MASK_ID, y0), pass_id=1)  # A revealed
    pass2 = fake_teacher(torch.where(part_a, MASK_ID, y0), pass_id=2)  # B revealed
    combined = compdemo_combine(pass1, pass2, part_a, inplace=inplace)
    assert combined.shape == (batch, length, VOCAB)
    for b in range(batch):
        for i in range(length):
            source_pass, was_masked, index = combined[b, i, :3].tolist()
            assert index == i
            if masked[b, i]:
                assert was_masked == 1.0, "distilled position read from a pass where it was visible"
                assert source_pass == (2.0 if part_a[b, i] else 1.0)
            else:
                assert source_pass == 1.0 and was_masked == 0.0


def test_combine_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="part_a"):
        compdemo_combine(
            torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.bool)
        )


def test_combine_per_position_values_as_the_chunk_level_reads_them() -> None:
    """``[B, L]`` passes (teacher token log-likelihoods) combine position by position."""
    gen = torch.Generator().manual_seed(6)
    pass1, pass2 = torch.randn(3, 9, generator=gen), torch.randn(3, 9, generator=gen)
    part_a = torch.rand(3, 9, generator=gen) < 0.4
    got = compdemo_combine(pass1, pass2, part_a)
    for b in range(3):
        for k in range(9):
            assert got[b, k] == (pass2 if part_a[b, k] else pass1)[b, k]
    with pytest.raises(ValueError, match="part_a"):
        compdemo_combine(pass1, pass2, part_a[:, :4])


def chunk_matrix(spans: list[list[tuple[int, int]]], length: int, n_chunks: int) -> torch.Tensor:
    """``A [B, length, n_chunks]`` from per-example lists of ``[start, end)`` spans."""
    out = torch.zeros(len(spans), length, n_chunks, dtype=torch.bool)
    for b, row in enumerate(spans):
        for c, (start, end) in enumerate(row):
            out[b, start:end, c] = True
    return out


def test_expand_chunks_equals_loop() -> None:
    spans = [[(1, 3), (3, 4), (6, 9)], [(0, 2), (5, 7)]]
    teacher_chunks = chunk_matrix(spans, length=10, n_chunks=3)
    chunk_sel = torch.tensor([[True, False, True], [False, True, True]])
    got = expand_chunks(chunk_sel, teacher_chunks)
    assert got.shape == (2, 10)
    for b in range(2):
        for k in range(10):
            expected = any(
                bool(chunk_sel[b, c]) and start <= k < end
                for c, (start, end) in enumerate(spans[b])
            )
            assert bool(got[b, k]) == expected
    with pytest.raises(ValueError, match="chunk_sel"):
        expand_chunks(chunk_sel[:, :2], teacher_chunks)


def test_chunk_level_two_passes() -> None:
    gen = torch.Generator().manual_seed(5)
    spans = [[(0, 2), (2, 5), (7, 8), (8, 11)], [(1, 4), (4, 6), (9, 12), (12, 13)]]
    length_t, n_chunks = 14, 4
    teacher_chunks = chunk_matrix(spans, length_t, n_chunks)
    has_masked = torch.tensor([[True, True, False, True], [True, True, True, False]])
    chunk_a, chunk_b = compdemo_split_chunks(has_masked, 0.5, gen)
    assert torch.equal(chunk_a | chunk_b, has_masked) and not (chunk_a & chunk_b).any()

    tokens_a = expand_chunks(chunk_a, teacher_chunks)
    tokens_b = expand_chunks(chunk_b, teacher_chunks)
    y0 = torch.randint(0, 50, (2, length_t), generator=gen)
    pass1 = fake_teacher(torch.where(tokens_b, MASK_ID, y0), pass_id=1)
    pass2 = fake_teacher(torch.where(tokens_a, MASK_ID, y0), pass_id=2)
    combined = compdemo_combine(pass1, pass2, tokens_a)
    for b in range(2):
        for c, (start, end) in enumerate(spans[b]):
            for k in range(start, end):
                if has_masked[b, c]:
                    assert combined[b, k, 1] == 1.0  # masked in the pass it was read from
                    assert combined[b, k, 0] == (2.0 if chunk_a[b, c] else 1.0)
                else:
                    assert combined[b, k, 1] == 0.0 and combined[b, k, 0] == 1.0
