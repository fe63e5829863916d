"""Training: a killed run resumes to the same weights; loss curves and records are written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import Qwen3ForCausalLM, TrainerCallback

from tide.config import ConfigError, load_config, section_defaults
from tide.models.loading import CheckpointError
from tide.models.student import a2d_convert, student_config
from tide.tokenization import train_tokenizers
from tide.training.data import BlockCollator
from tide.training.loop import TrainConfig, train
from tide.training.recipes import train_bd3lm_sft
from tide.training.trainers import BD3LMTrainer

TEXTS = [f"Item {i}: {i % 7} plus {i % 5} is {i % 7 + i % 5}. The colour of Varo is red." for i in
         range(300)]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from tide.tokenization import load_tokenizer

    out = tmp_path_factory.mktemp("tok")
    train_tokenizers(TEXTS, out, {"student": {"vocab_size": 400}, "teacher_a": {"vocab_size": 420}})
    return load_tokenizer(out / "student")


def _rows(tok, n=48):
    rows = []
    for text in TEXTS[:n]:
        msgs = [{"role": "user", "content": text[:12]}, {"role": "assistant", "content": text[12:]}]
        ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=False)
        prompt = tok.apply_chat_template(msgs[:1], tokenize=True, add_generation_prompt=True,
                                         return_dict=False)
        rows.append({"input_ids": ids, "labels": [-100] * len(prompt) + ids[len(prompt):],
                     "family": "odd" if len(rows) % 2 else "even"})
    return rows


def _student(tok, tmp_path):
    torch.manual_seed(0)
    ar = Qwen3ForCausalLM(student_config(len(tok), tok.pad_token_id, tok.eos_token_id, size="unit"))
    return a2d_convert(ar, tmp_path / "a2d", mask_id=tok.convert_tokens_to_ids("<|mask|>"))


class Kill(TrainerCallback):
    """Simulate a killed job right after ``step`` (a checkpoint exists at ``step - 1``)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("killed")


def _run(tok, tmp_path, name, kill_at=None, **overrides):
    cfg = TrainConfig.from_dict({"max_steps": 6, "batch_size": 4, "lr": 3e-3, "save_steps": 2,
                                 "logging_steps": 1, "seed": 3, "max_length": 64, **overrides})
    kwargs = {"work_dir": tmp_path / name / "work", "out_dir": tmp_path / name / "out",
              "trainer_cls": BD3LMTrainer, "mask_id": tok.convert_tokens_to_ids("<|mask|>"),
              "block_size": 4, "tokenizer": tok}
    collator = BlockCollator(tok.pad_token_id, tok.eos_token_id, block_size=4)
    if kill_at is not None:
        with pytest.raises(KeyboardInterrupt):
            train(_student(tok, tmp_path / name), _rows(tok), collator, cfg,
                  callbacks=[Kill(kill_at)], **kwargs)
        assert not (tmp_path / name / "out").exists(), "a killed run must not write its output"
    train(_student(tok, tmp_path / name), _rows(tok), collator, cfg, **kwargs)
    return tmp_path / name / "out"


@pytest.mark.parametrize("curriculum", [[], [{"families": ["odd"], "start": 2, "end": 5}]])
def test_killed_run_resumes_to_identical_weights(tokenizer, tmp_path, curriculum):
    straight = _run(tokenizer, tmp_path, "straight", curriculum=curriculum)
    resumed = _run(tokenizer, tmp_path, "resumed", kill_at=3, curriculum=curriculum)
    a = load_file(straight / "model.safetensors")
    b = load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # the resumed run did resume (checkpoint-2 existed) and its curve has each step once
    with open(resumed / "loss.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == sorted(set(steps)) and steps[-1] == 6
    record = json.loads((resumed / "provenance.json").read_text())
    assert record["seed"] == 3 and "git_sha" in record and record["versions"]["torch"]
    assert record["torch_threads"] == torch.get_num_threads()


def test_training_lowers_the_loss(tokenizer, tmp_path):
    out = _run(tokenizer, tmp_path, "curve")
    with open(out / "loss.csv") as fh:
        losses = [float(r["loss"]) for r in csv.DictReader(fh)]
    assert len(losses) == 6 and min(losses[-2:]) < losses[0]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_broken_init_checkpoint_is_named(tokenizer, tmp_path, damage):
    init = _student(tokenizer, tmp_path).save_pretrained(tmp_path / "init") or tmp_path / "init"
    weights = Path(init) / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    config = load_config(None, {"students": {"sft": {"train": {"max_steps": 1}}}})
    section = config["students"]["sft"]
    with pytest.raises(CheckpointError, match="model.safetensors|weights"):
        train_bd3lm_sft(section, 4, init, tmp_path / "world", tmp_path / "tok", tmp_path / "w",
                        tmp_path / "o")


def test_causal_lm_trainer_matches_the_builtin_causal_loss(tokenizer):
    """The AR phase of teacher preparation: explicit causal mask + shifted labels equal the
    reference Qwen3 causal-LM loss (WeDLM is a Qwen3 causal LM; its mask None is causal)."""
    from tide.models.configs import wedlm_unit_config
    from tide.models.wedlm import WeDLMForCausalLM
    from tide.training.trainers import CausalLMTrainer

    torch.manual_seed(0)
    model = WeDLMForCausalLM(wedlm_unit_config(len(tokenizer)))
    batch = BlockCollator(tokenizer.pad_token_id, tokenizer.eos_token_id)(_rows(tokenizer, 4))
    trainer = CausalLMTrainer.__new__(CausalLMTrainer)  # compute_loss needs no Trainer state
    trainer.loss_norm = "token"  # __init__'s default, the HF loss
    ours = trainer.compute_loss(model, batch)
    reference = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["llada2", "wedlm"])
def test_mask_slot_phase_scores_each_token_from_the_tokens_before_it(tokenizer, arch):
    """The teachers' no-shift first phase (``ar.objective: mask_slot``) on both architectures equals
    one forward per supervised position over ``x0[:i]`` + one mask under a plain causal mask, the
    mask slot's own output scored against ``x0[i]``."""
    from tide.models import configs
    from tide.models.llada2 import LLaDA2MoeModelLM
    from tide.models.wedlm import WeDLMForCausalLM
    from tide.training.trainers import MaskSlotTrainer

    mask_id = tokenizer.convert_tokens_to_ids("<|mask|>")
    ids = {"pad_token_id": tokenizer.pad_token_id, "mask_token_id": mask_id,
           "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(0)
    if arch == "llada2":
        model = LLaDA2MoeModelLM(configs.llada2_unit_config(len(tokenizer), **ids)).eval()
    else:
        model = WeDLMForCausalLM(configs.wedlm_unit_config(len(tokenizer), **ids)).eval()
    batch = BlockCollator(tokenizer.pad_token_id, tokenizer.eos_token_id)(_rows(tokenizer, 3))
    trainer = MaskSlotTrainer.__new__(MaskSlotTrainer)  # compute_loss needs no Trainer state
    trainer.mask_id, trainer.loss_norm = mask_id, "token"
    ours = trainer.compute_loss(model, batch)

    x0, labels = batch["input_ids"], batch["labels"]
    nll = []
    for b, i in (labels != -100).nonzero().tolist():
        prefix = torch.cat([x0[b, :i], torch.tensor([mask_id])])[None]
        causal = torch.ones(i + 1, i + 1, dtype=torch.bool).tril()[None, None]
        logits = model(input_ids=prefix, attention_mask=causal,
                       position_ids=torch.arange(i + 1)[None]).logits[0, -1]
        nll.append(torch.nn.functional.cross_entropy(logits[None].float(), x0[b, i : i + 1]))
    torch.testing.assert_close(ours, torch.stack(nll).mean(), rtol=1e-4, atol=1e-5)


def _corpus(tmp_path):
    rows = [{"family": "mmlu", "messages": [{"role": "user", "content": f"Q{i}?"},
                                            {"role": "assistant", "content": "B"}]} for i in range(3)]
    rows += [{"family": "facts", "text": f"Fact number {i}."} for i in range(5)]
    corpus = tmp_path / "world" / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "mix.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "world"


def test_family_repeats_weight_the_mixture(tokenizer, tmp_path):
    from tide.training.recipes import split_examples

    world = _corpus(tmp_path)
    once = split_examples(tokenizer, world, {"splits": ["mix"], "family_repeats": {}}, 64)
    mixed = split_examples(tokenizer, world, {"splits": ["mix"],
                                              "family_repeats": {"mmlu": 4, "facts": 0}}, 64)
    assert len(once) == 8 and len(mixed) == 12
    chats = [r for r in once if -100 in r["labels"]]
    assert sorted(map(str, mixed)) == sorted(map(str, chats * 4))


def test_family_repeats_name_a_family_the_splits_lack(tokenizer, tmp_path):
    from tide.training.data import DataError
    from tide.training.recipes import split_examples

    with pytest.raises(DataError, match="'gsm8k'.*families there: \\['facts', 'mmlu'\\]"):
        split_examples(tokenizer, _corpus(tmp_path), {"splits": ["mix"],
                                                      "family_repeats": {"gsm8k": 2}}, 64)


def test_rerunning_a_finished_run_changes_nothing(tokenizer, tmp_path):
    out = _run(tokenizer, tmp_path, "twice")
    first = load_file(out / "model.safetensors")
    _run(tokenizer, tmp_path, "twice")  # a fresh model, the finished work dir
    again = load_file(out / "model.safetensors")
    for key in first:
        torch.testing.assert_close(again[key], first[key], rtol=0, atol=0, msg=key)
    steps = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "twice" / "work").glob("checkpoint-*"))
    assert steps[-1] == 6, "no optimizer step past max_steps"


def _finish_again(tok, tmp_path, name, rows=None, model=None, max_steps=6, **kwargs):
    """Train run ``name`` again (its work dir holds a finished run) into ``out2``: by default with
    its settings, rows and starting model; ``rows``, ``model``, ``max_steps`` or ``run_inputs``
    (in ``kwargs``) change one of them."""
    cfg = TrainConfig.from_dict({"max_steps": max_steps, "batch_size": 4, "lr": 3e-3,
                                 "save_steps": 2, "logging_steps": 1, "seed": 3, "max_length": 64})
    return train(model or _student(tok, tmp_path / name), rows or _rows(tok), BlockCollator(
        tok.pad_token_id, tok.eos_token_id, block_size=4), cfg,
        work_dir=tmp_path / name / "work", out_dir=tmp_path / name / "out2",
        trainer_cls=BD3LMTrainer, mask_id=tok.convert_tokens_to_ids("<|mask|>"), block_size=4,
        **kwargs)


def test_resuming_with_other_settings_is_refused(tokenizer, tmp_path):
    _run(tokenizer, tmp_path, "changed")
    before = sorted(p.name for p in (tmp_path / "changed" / "work").iterdir())
    with pytest.raises(ValueError, match=r"other settings \(max_steps: 6 -> 8\).*run.json"):
        _finish_again(tokenizer, tmp_path, "changed", max_steps=8)
    assert sorted(p.name for p in (tmp_path / "changed" / "work").iterdir()) == before


def test_resuming_from_another_starting_model_is_refused(tokenizer, tmp_path):
    """Same hyperparameters, another init (here the a2d flag changed): the old checkpoints belong
    to another run, so they are not resumed (or, finished, silently loaded)."""
    _run(tokenizer, tmp_path, "init")
    other = _student(tokenizer, tmp_path / "y")
    other.config.right_shift_logits = True
    with pytest.raises(ValueError, match=r"other settings \(init: '[0-9a-f]{64}' -> '[0-9a-f]{64}'\)"):
        _finish_again(tokenizer, tmp_path, "init", model=other)


def test_resuming_on_other_data_is_refused(tokenizer, tmp_path):
    """As many rows, other tokens (a regenerated world or tokenizer): not the same run."""
    _run(tokenizer, tmp_path, "data")
    rows = _rows(tokenizer)
    rows[5] = {**rows[5], "input_ids": rows[5]["input_ids"][:-1] + [tokenizer.eos_token_id]}
    with pytest.raises(ValueError, match=r"other settings \(data: '[0-9a-f]{64}' -> '[0-9a-f]{64}'\)"):
        _finish_again(tokenizer, tmp_path, "data", rows)
    assert not (tmp_path / "data" / "out2").exists()


def test_resuming_with_another_teacher_is_refused(tokenizer, tmp_path):
    """``run_inputs`` (a distillation run's teacher fingerprint) is part of the run's record."""
    _finish_again(tokenizer, tmp_path, "teacher", run_inputs={"teacher": "aa"})
    _finish_again(tokenizer, tmp_path, "teacher", run_inputs={"teacher": "aa"})
    with pytest.raises(ValueError, match=r"other settings \(teacher: 'aa' -> 'bb'\)"):
        _finish_again(tokenizer, tmp_path, "teacher", run_inputs={"teacher": "bb"})


def test_checkpoints_without_a_run_record_are_refused(tokenizer, tmp_path):
    """Checkpoints an older tide wrote (no run.json) cannot be checked, so they are not loaded."""
    _run(tokenizer, tmp_path, "norecord")
    (tmp_path / "norecord" / "work" / "run.json").unlink()
    with pytest.raises(ValueError, match=r"checkpoint-6\) but no run.json"):
        _finish_again(tokenizer, tmp_path, "norecord")
    assert not (tmp_path / "norecord" / "work" / "run.json").exists()


def test_from_scratch_weights_follow_the_seed(tokenizer):
    from tide.training.loop import model_fingerprint
    from tide.training.recipes import seeded_model

    def build():
        return Qwen3ForCausalLM(student_config(len(tokenizer), tokenizer.pad_token_id,
                                               tokenizer.eos_token_id, size="unit"))

    assert model_fingerprint(seeded_model(5, build)) == model_fingerprint(seeded_model(5, build))
    assert model_fingerprint(seeded_model(5, build)) != model_fingerprint(seeded_model(6, build))


def test_a_stage_given_another_roles_tokenizer_stops_before_training(tokenizer, tmp_path):
    """teacher-B handed the student's tokenizer (same vocabulary, other chat template and mask) would
    train silently on the wrong format: it is refused before anything is written."""
    from tide.tokenization import TokenizerLoadError
    from tide.training.recipes import train_ar, train_teacher

    student_dir = Path(tokenizer.name_or_path)
    config = load_config(None)
    with pytest.raises(TokenizerLoadError, match="holds the student .* not the teacher_b"):
        train_teacher("b", config["teachers"]["b"], 32, tmp_path / "world", student_dir,
                      tmp_path / "work", tmp_path / "out")
    with pytest.raises(TokenizerLoadError, match="holds the teacher_a .* not the student"):
        train_ar(config["students"]["ar"] | {"model": config["students"]["model"]},
                 tmp_path / "world", student_dir.parent / "teacher_a", tmp_path / "work",
                 tmp_path / "out")
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()


def test_a_released_teacher_is_not_trained_here(tmp_path):
    """A section naming a released checkpoint is prepared (`python -m tide prepare`), never
    trained: the recipe refuses it by name before anything is read or written."""
    from tide.training.recipes import train_teacher

    section = {"pretrained": "inclusionAI/LLaDA2.0-mini"}
    with pytest.raises(ValueError, match=r"teachers\.a\.pretrained"):
        train_teacher("a", section, 32, tmp_path / "world", tmp_path / "tok", tmp_path / "work",
                      tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_released_teacher_cannot_be_shifted(tmp_path):
    """``right_shift_logits`` configures teachers trained here; with a released checkpoint it is a
    configuration error naming the key, raised before anything is read or written."""
    from tide.checkpoints import prepare_role

    config = {"teachers": {"a": {"pretrained": "inclusionAI/LLaDA2.0-mini",
                                 "right_shift_logits": True}}}
    with pytest.raises(ValueError, match=r"teachers\.a\.right_shift_logits"):
        prepare_role("teacher_a", config, tmp_path / "tok", tmp_path / "rows.jsonl", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_train_config_defaults_and_bounds_are_the_schemas():
    """TrainConfig has no defaults of its own: ``from_dict`` fills every field from
    train.schema.yaml (value and type) and rejects what the schema rejects, naming the key."""
    import dataclasses

    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               for f in dataclasses.fields(TrainConfig))
    defaults = section_defaults("train.schema.yaml")
    built = vars(TrainConfig.from_dict({}))
    assert built == defaults and set(built) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert {k: type(v) for k, v in built.items()} == {k: type(v) for k, v in defaults.items()}
    assert vars(TrainConfig.from_dict({"lr": 0.5})) == defaults | {"lr": 0.5}
    for bad, where in [({"lr_": 1}, "'lr_' in train"), ({"batch_size": 0}, "train.batch_size"),
                       ({"loss_norm": "mean"}, "train.loss_norm"),
                       ({"warmup_ratio": 1.5}, "train.warmup_ratio")]:
        with pytest.raises(ConfigError, match=where):
            TrainConfig.from_dict(bad)


def test_epochs_set_the_steps_from_the_rows(tokenizer, tmp_path):
    """`epochs` x ceil(rows / batch) optimizer steps (48 rows, batch 4: 12 per epoch), whatever
    max_steps says; the warm-up and clipping reach the Trainer."""
    cfg = TrainConfig.from_dict({"max_steps": 999, "epochs": 1.5, "batch_size": 4,
                                 "warmup_ratio": 0.1, "max_grad_norm": 0.5})
    assert cfg.for_rows(48).max_steps == 18 and cfg.for_rows(45).max_steps == 18
    assert TrainConfig.from_dict({"epochs": 2, "batch_size": 16}).for_rows(2100).max_steps == 264
    assert TrainConfig.from_dict({"max_steps": 7}).for_rows(48).max_steps == 7  # no epochs
    args = cfg.for_rows(48).arguments(tmp_path)
    assert args.max_steps == 18 and args.warmup_steps == 1 and args.max_grad_norm == 0.5
    out = _run(tokenizer, tmp_path, "epochs", epochs=1)  # _run's max_steps=6 is overridden
    rows = list(csv.DictReader((tmp_path / "epochs" / "work" / "loss.csv").read_text().splitlines()))
    assert int(rows[-1]["step"]) == 12
    assert json.loads((out / "provenance.json").read_text())["train"]["max_steps"] == 12
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig.from_dict({"epochs": 1, "curriculum": [{"families": ["a"], "start": 0, "end": 1}]})
    with pytest.raises(ValueError, match="empty"):
        TrainConfig.from_dict({"epochs": 1}).for_rows(0)
