"""Stage outputs that DVC checked out as hardlinks to its cache are replaced, not overwritten."""

from __future__ import annotations

import os

import torch
from transformers import Qwen3ForCausalLM

from tide.models.student import a2d_convert, student_config
from tide.outputs import fresh_output_dir


def test_fresh_output_dir_leaves_hardlinked_cache_objects_intact(tmp_path):
    cache = tmp_path / "cache" / "ab12"
    cache.parent.mkdir()
    cache.write_text("pushed weights")
    out = tmp_path / "results" / "stage"
    out.mkdir(parents=True)
    os.link(cache, out / "model.safetensors")  # what `dvc checkout` does with cache.type hardlink
    fresh = fresh_output_dir(out)
    assert fresh == out and list(out.iterdir()) == []
    (out / "model.safetensors").write_text("new weights")
    assert cache.read_text() == "pushed weights"


def test_a2d_conversion_over_a_hardlinked_checkout(tmp_path):
    """The checkout links identical tokenizer files of ar/ and a2d/ to one cache object: the
    conversion used to fail copying a file onto itself."""
    torch.manual_seed(0)
    config = student_config(64, 0, 1, a2d=False, size="unit")
    ar_dir, a2d_dir = tmp_path / "ar", tmp_path / "a2d"
    Qwen3ForCausalLM(config).save_pretrained(ar_dir)
    (ar_dir / "tokenizer.json").write_text("{}")
    a2d_dir.mkdir()
    os.link(ar_dir / "tokenizer.json", a2d_dir / "tokenizer.json")
    a2d_convert(ar_dir, a2d_dir, mask_id=63)
    assert (a2d_dir / "tokenizer.json").read_text() == "{}"
    assert not os.path.samefile(ar_dir / "tokenizer.json", a2d_dir / "tokenizer.json")
