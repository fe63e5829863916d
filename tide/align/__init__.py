"""Alignment of two tokenizations of the same conversation.

Pipeline A (different tokenizers): byte chunks between the student's and the teacher's tokens
(:func:`align_conversation`, :func:`align_chunks`), their 0/1 matrices and chunk-consistent masking
(:func:`chunk_matrices`, :func:`chunk_consistent_mask`). Pipeline B (shared vocabulary, different
chat templates): paired token positions (:func:`align_positions`, :func:`collate_positions`).
:func:`build_alignment_cache` aligns a whole distill split once; :func:`load_alignment_cache` reads it.
"""

from tide.align.cache import AlignmentCache, build_alignment_cache, chunk_kind, load_alignment_cache
from tide.align.chunks import (
    align_chunks,
    chunk_consistent_mask,
    chunk_matrices,
    equalise_leading_spaces,
)
from tide.align.cross import align_conversation
from tide.align.positions import align_positions, collate_positions
from tide.align.ranges import content_ranges
from tide.align.tokens import AlignmentError, token_bytes

__all__ = [
    "AlignmentCache",
    "AlignmentError",
    "align_chunks",
    "align_conversation",
    "align_positions",
    "build_alignment_cache",
    "chunk_consistent_mask",
    "chunk_kind",
    "chunk_matrices",
    "collate_positions",
    "content_ranges",
    "equalise_leading_spaces",
    "load_alignment_cache",
    "token_bytes",
]
