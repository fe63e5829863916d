"""tide.align chunk primitives: the greedy common-boundary walk, chunk matrices, chunk-consistent
masking and position collation, each against a slow reference written here (loops, sets)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from tide.align import align_chunks, chunk_consistent_mask, chunk_matrices, collate_positions

torch.set_num_threads(1)


def reference_chunks(t: list[bytes], s: list[bytes]) -> list[tuple[int, int, int, int]]:
    """Chunks as consecutive shared cumulative boundaries (same bytes on both sides, no empty token)."""

    def ends(tokens):
        out, total = {}, 0
        for i, tok in enumerate(tokens):
            total += len(tok)
            out[total] = i
        return out

    et, es = ends(t), ends(s)
    chunks, prev_t, prev_s = [], 0, 0
    for b in sorted(set(et) & set(es)):
        chunks.append((prev_t, et[b] + 1, prev_s, es[b] + 1))
        prev_t, prev_s = et[b] + 1, es[b] + 1
    return chunks


def random_split(data: bytes, rng: random.Random, max_len: int) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, max_len)
        out.append(data[i : i + n])
        i += n
    return out


def test_walk_kinds_and_checks():
    # 1:1, 1:n (one teacher token, three student tokens), n:1, n:m
    t = [b"ab", b"cde", b"f", b"g", b"hi", b"jk"]
    s = [b"ab", b"c", b"d", b"e", b"fg", b"h", b"ijk"]
    assert align_chunks(t, s) == [(0, 1, 0, 1), (1, 2, 1, 4), (2, 4, 4, 5), (4, 6, 5, 7)]
    # equal lengths but different bytes: walked, then dropped by the string check
    assert align_chunks([b"ab", b"cd"], [b"ab", b"xd"]) == [(0, 1, 0, 1)]
    # trailing tokens after the last shared boundary form no chunk (e.g. truncated student)
    assert align_chunks([b"abc", b"def"], [b"ab", b"c", b"de"]) == [(0, 1, 0, 2)]
    assert align_chunks([], [b"a"]) == [] and align_chunks([b"a"], []) == []


def test_leading_space_equalisation():
    # the student range lacks the leading space that the teacher range holds
    assert align_chunks([b" ", b"hello", b" x"], [b"hel", b"lo", b" x"]) == [
        (0, 2, 0, 2),
        (2, 3, 2, 3),
    ]
    assert align_chunks([b"hello"], [b" hel", b"lo"]) == [(0, 1, 0, 2)]
    # counted over the whole list, not only the first token
    assert align_chunks([b"  ", b"x"], [b" ", b" x"]) == [(0, 2, 0, 2)]


def test_walk_matches_boundary_reference_on_random_splits():
    rng = random.Random(0)
    seen = set()
    for _ in range(400):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 60))).lstrip(b" ") or b"x"
        t, s = random_split(data, rng, 4), random_split(data, rng, 5)
        chunks = align_chunks(t, s)
        assert chunks == reference_chunks(t, s)
        # contiguous, ordered, covering everything, same bytes on both sides
        assert chunks[0][0] == 0 and chunks[0][2] == 0
        assert chunks[-1][1] == len(t) and chunks[-1][3] == len(s)
        for a, b in itertools.pairwise(chunks):
            assert a[1] == b[0] and a[3] == b[2]
        for t0, t1, s0, s1 in chunks:
            assert b"".join(t[t0:t1]) == b"".join(s[s0:s1])
            seen.add((t1 - t0 > 1, s1 - s0 > 1))
    assert seen == {(False, False), (False, True), (True, False), (True, True)}


def test_chunk_matrices_against_loops():
    rng = random.Random(1)
    per_example = []
    for b in range(4):
        chunks, t, s = [], rng.randint(0, 3), rng.randint(0, 3)
        for _ in range(rng.randint(0, 6)):
            nt, ns = rng.randint(1, 3), rng.randint(1, 3)
            chunks.append((t, t + nt, s, s + ns))
            t, s = t + nt + rng.randint(0, 2), s + ns + rng.randint(0, 2)
        per_example.append(chunks)
    per_example[2] = []
    L, L_T = 40, 45
    a_s, a_t = chunk_matrices(per_example, L, L_T)
    C = max(1, max(len(c) for c in per_example))
    assert a_s.shape == (4, L, C) and a_t.shape == (4, L_T, C) and a_s.dtype == torch.bool
    for b, chunks in enumerate(per_example):
        for c in range(C):
            for i in range(L):
                assert bool(a_s[b, i, c]) == (c < len(chunks) and chunks[c][2] <= i < chunks[c][3])
            for k in range(L_T):
                assert bool(a_t[b, k, c]) == (c < len(chunks) and chunks[c][0] <= k < chunks[c][1])
    a_s, a_t = chunk_matrices([[], []], 8, 9)
    assert a_s.shape == (2, 8, 1) and not a_s.any() and not a_t.any()
    with pytest.raises(ValueError, match="example 1 chunk 0"):
        chunk_matrices([[(0, 1, 0, 1)], [(0, 2, 5, 9)]], 8, 9)


def reference_mask(masked0, a_s, a_t, labels):
    B, L, C = a_s.shape
    L_T = a_t.shape[1]
    has_m = torch.zeros(B, C, dtype=torch.bool)
    has_p = torch.zeros(B, C, dtype=torch.bool)
    for b in range(B):
        for c in range(C):
            for i in range(L):
                if a_s[b, i, c] and masked0[b, i]:
                    has_m[b, c] = True
                if a_s[b, i, c] and labels[b, i] == -100:
                    has_p[b, c] = True
    masked = masked0.clone()
    t_masked = torch.zeros(B, L_T, dtype=torch.bool)
    for b in range(B):
        for c in range(C):
            if not has_m[b, c]:
                continue
            for i in range(L):
                if a_s[b, i, c] and labels[b, i] != -100:
                    masked[b, i] = True
            for k in range(L_T):
                if a_t[b, k, c]:
                    t_masked[b, k] = True
    return masked, t_masked, has_m & ~has_p, has_m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunk_consistent_mask_against_loops(seed):
    g = torch.Generator().manual_seed(seed)
    B, L, L_T = 3, 24, 30
    per_example = []
    for _ in range(B):
        chunks, t, s = [], 0, int(torch.randint(0, 3, (1,), generator=g))
        while True:
            nt, ns = (int(x) for x in torch.randint(1, 4, (2,), generator=g))
            if t + nt > L_T or s + ns > L:
                break
            chunks.append((t, t + nt, s, s + ns))
            t, s = t + nt + int(torch.randint(0, 2, (1,), generator=g)), s + ns
        per_example.append(chunks)
    a_s, a_t = chunk_matrices(per_example, L, L_T)
    labels = torch.randint(0, 50, (B, L), generator=g)
    for b in range(B):  # a prompt, then padding at the end
        labels[b, : int(torch.randint(2, 9, (1,), generator=g))] = -100
        labels[b, L - 3 :] = -100
    maskable = labels != -100
    masked0 = (torch.rand(B, L, generator=g) < 0.3) & maskable
    got = chunk_consistent_mask(masked0, a_s, a_t, labels)
    want = reference_mask(masked0, a_s, a_t, labels)
    for x, y in zip(got, want):
        assert torch.equal(x, y)
    masked, _, active, has_m = got
    assert not (masked & ~maskable).any() and (masked | ~masked0).all()
    assert has_m.any() and (active <= has_m).all()


def test_collate_positions():
    s = [[3, 4, 9], [], [7]]
    t = [[1, 2, 5], [], [0]]
    si, ti, valid = collate_positions(s, t)
    assert si.shape == ti.shape == valid.shape == (3, 3)
    for b in range(3):
        for n in range(3):
            assert bool(valid[b, n]) == (n < len(s[b]))
            assert int(si[b, n]) == (s[b][n] if n < len(s[b]) else 0)
            assert int(ti[b, n]) == (t[b][n] if n < len(t[b]) else 0)
    si, ti, valid = collate_positions([[]], [[]])
    assert si.shape == (1, 1) and not valid.any()
    with pytest.raises(ValueError, match="example 0"):
        collate_positions([[1, 2]], [[1]])
