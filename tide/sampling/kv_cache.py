"""A preallocated KV cache for block samplers: committed keys/values plus one scratch window.

`BlockKVCache` holds, per layer, buffers ``[N, H_kv, capacity, D]`` allocated on the first write.
``committed`` columns are final (the clean prefix); a forward writes its new keys/values right
after them and attends over ``committed + new`` columns, so repeated denoising steps of one block
overwrite the same scratch window (no copies, no concatenation). `commit(n)` makes the first ``n``
scratch columns of every layer part of the prefix.

It is a transformers ``Cache`` (layers implement ``CacheLayerMixin``), so any HF decoder that calls
``past_key_values.update(k, v, layer_idx)`` uses it unchanged (Qwen3, the a2d student, WeDLM).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class BlockKVLayer(CacheLayerMixin):
    """One layer's buffers; `update` writes at the committed offset and returns views up to the
    end of the written columns: keys/values ``[N, H_kv, committed + Q, D]``."""

    is_compileable = False
    is_croppable = False

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.committed = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        batch, heads, _, dim = key_states.shape
        shape = (batch, heads, self.capacity, dim)
        self.keys = key_states.new_empty(shape)
        self.values = value_states.new_empty((batch, value_states.shape[1], self.capacity,
                                              value_states.shape[-1]))
        self.dtype, self.device = key_states.dtype, key_states.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """key_states/value_states ``[N, H_kv, Q, D]`` -> (keys, values) ``[N, H_kv, committed+Q, D]``."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.committed + key_states.shape[-2]
        if end > self.capacity:
            raise ValueError(f"BlockKVCache: {end} columns exceed the capacity {self.capacity}")
        self.keys[:, :, self.committed : end] = key_states
        self.values[:, :, self.committed : end] = value_states
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.committed + query_length, 0

    def get_seq_length(self) -> int:
        return self.committed

    def get_max_length(self) -> int:
        return self.capacity


class BlockKVCache(Cache):
    """Preallocated cache of ``num_layers`` `BlockKVLayer` s of ``capacity`` columns each."""

    def __init__(self, num_layers: int, capacity: int) -> None:
        super().__init__(layers=[BlockKVLayer(capacity) for _ in range(num_layers)])

    @property
    def committed(self) -> int:
        """Number of final (prefix) columns."""
        return self.layers[0].committed

    def commit(self, columns: int) -> None:
        """Make the first ``columns`` scratch columns (those the last forward wrote) final."""
        for layer in self.layers:
            layer.committed += columns


def block_cache_for(model, capacity: int) -> BlockKVCache:
    """An empty `BlockKVCache` with one layer per decoder layer of ``model``'s config."""
    config = model.config
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    return BlockKVCache(config.num_hidden_layers, capacity)
