"""Fixtures of the evaluation tests: a smoke world, its tokenizers, tiny random checkpoints of
each model class (saved with their tokenizer, as the recipes save them), a fake-LM helper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

torch.set_num_threads(1)

SMOKE_WORLD = {
    "seed": 7,
    "sizes": {"pretrain_docs": 300, "sft_per_family": 30, "distill_per_family": 30,
              "eval_per_family": 30},
}  # fmt: skip


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    """The real smoke world (``tide.world.generate_world``): corpus/ and tasks/<family>.jsonl."""
    from tide.world import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(SMOKE_WORLD, out)
    return out


@pytest.fixture(scope="session")
def tokenizer_dirs(world_dir, tmp_path_factory) -> dict[str, Path]:
    from tide.tokenization import corpus_texts, train_tokenizers

    out = tmp_path_factory.mktemp("tok")
    return train_tokenizers(list(corpus_texts(world_dir / "corpus")), out, {})


@pytest.fixture(scope="session")
def world_rows(world_dir) -> dict[str, list[dict]]:
    """The held-out rows of each family of the smoke world."""
    rows = {}
    for path in sorted((world_dir / "tasks").glob("*.jsonl")):
        rows[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line]
    return rows


def save_with_tokenizer(model, tokenizer_dir: Path, out: Path) -> Path:
    """``save_pretrained`` of model and tokenizer into ``out``."""
    from tide.tokenization import load_tokenizer

    model.save_pretrained(out)
    load_tokenizer(tokenizer_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def student_dir(tokenizer_dirs, tmp_path_factory) -> Path:
    """A random unit-size BD3LM student (a2d-qwen3) with the student tokenizer. Its mask row is
    zeroed: with tied embeddings a random model otherwise predicts the mask at every masked slot
    (which stays masked), and every reply would be empty."""
    from tide.models.student import A2DQwen3LMHeadModel, student_config
    from tide.tokenization import load_tokenizer

    tok = load_tokenizer(tokenizer_dirs["student"])
    torch.manual_seed(0)
    config = student_config(len(tok), tok.pad_token_id, tok.eos_token_id, size="unit", a2d=True)
    model = A2DQwen3LMHeadModel(config).eval()
    with torch.no_grad():
        model.get_input_embeddings().weight[tok.mask_token_id] = 0.0
    return save_with_tokenizer(model, tokenizer_dirs["student"], tmp_path_factory.mktemp("student"))


@pytest.fixture(scope="session")
def ar_dir(tokenizer_dirs, tmp_path_factory) -> Path:
    """A random unit-size AR Qwen3 with the student tokenizer."""
    from transformers import Qwen3ForCausalLM

    from tide.models.student import student_config
    from tide.tokenization import load_tokenizer

    tok = load_tokenizer(tokenizer_dirs["student"])
    torch.manual_seed(1)
    config = student_config(len(tok), tok.pad_token_id, tok.eos_token_id, size="unit")
    model = Qwen3ForCausalLM(config).eval()
    return save_with_tokenizer(model, tokenizer_dirs["student"], tmp_path_factory.mktemp("ar"))


@pytest.fixture(scope="session")
def llada2_dir(tokenizer_dirs, tmp_path_factory) -> Path:
    """A random unit-size LLaDA2 teacher with the teacher-A tokenizer."""
    from tide.models.configs import llada2_unit_config
    from tide.models.llada2 import LLaDA2MoeModelLM
    from tide.tokenization import load_tokenizer, tokenizer_meta

    tok = load_tokenizer(tokenizer_dirs["teacher_a"])
    meta = tokenizer_meta(tok)
    torch.manual_seed(2)
    config = llada2_unit_config(
        len(tok),
        pad_token_id=tok.pad_token_id,
        mask_token_id=meta["mask_token_id"],
        eos_token_id=tok.eos_token_id,
    )
    model = LLaDA2MoeModelLM(config).eval()
    return save_with_tokenizer(
        model, tokenizer_dirs["teacher_a"], tmp_path_factory.mktemp("llada2")
    )


@pytest.fixture(scope="session")
def wedlm_dir(tokenizer_dirs, tmp_path_factory) -> Path:
    """A random unit-size WeDLM teacher with the teacher-B tokenizer."""
    from tide.models.configs import wedlm_unit_config
    from tide.models.wedlm import WeDLMForCausalLM
    from tide.tokenization import load_tokenizer, tokenizer_meta

    tok = load_tokenizer(tokenizer_dirs["teacher_b"], mask_token="<tool_response>")
    meta = tokenizer_meta(tok)
    torch.manual_seed(3)
    config = wedlm_unit_config(
        len(tok),
        pad_token_id=tok.pad_token_id,
        mask_token_id=meta["mask_token_id"],
        eos_token_id=tok.eos_token_id,
    )
    model = WeDLMForCausalLM(config).eval()
    return save_with_tokenizer(model, tokenizer_dirs["teacher_b"], tmp_path_factory.mktemp("wedlm"))


@register_model("tide_test_canned")
class CannedLM(LM):
    """Fake lm-eval model: the reply to each item comes from a JSON file ``{item id: reply}``
    (passed as ``pretrained``; HumanEval rows are keyed by ``task_id``). Records every context."""

    contexts: ClassVar[dict[str, str]] = {}

    def __init__(self, pretrained: str, seed: int = 0, batch_size: int = 1, **_: object) -> None:
        super().__init__()
        self.replies = json.loads(Path(pretrained).read_text())

    @property
    def tokenizer_name(self) -> str:
        return "canned"

    def chat_template(self, chat_template=False) -> str:
        return "canned"

    def apply_chat_template(self, chat_history, add_generation_prompt=True) -> str:
        return json.dumps({"messages": chat_history, "generation_prompt": add_generation_prompt})

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError

    def generate_until(self, requests):
        keys = [r.doc.get("id", r.doc.get("task_id")) for r in requests]
        for key, r in zip(keys, requests):
            CannedLM.contexts[key] = r.args[0]
        return [self.replies[key] for key in keys]


@pytest.fixture
def canned_contexts() -> dict[str, str]:
    """Contexts the canned LM received, by item id."""
    return CannedLM.contexts


@pytest.fixture
def right_reply():
    """``right_reply(family, row)``: a reply in the world's trained format scored as correct."""
    return _right_reply


def _right_reply(family: str, row: dict) -> str:
    """A reply in the world's trained format that the task scores as correct."""
    gold = row["answer"]
    return {
        "mmlu": gold,
        "hellaswag": gold.upper(),
        "mmlu_pro": f"So the answer is ({gold}).",
        "gsm8k": f"1+1=2.\n#### {gold}",
        "bbh": f"So the answer is {gold}.",
        "math": f"$x = \\boxed{{{gold}}}$.",
        "humaneval": row.get("canonical_solution", "") + "```",
        "mbpp": row.get("canonical_solution", "") + "```",
    }[family]
