"""Multi-process training: two CPU processes (torchrun, gloo) take the same distillation step as one
process with two accumulation steps — same rows, same noise, same averaged gradient — for both
pipelines through the real stage (``tide.distill.stages.distill``). Also: the noise seeds of
process 0 are the single-process ones, accelerate's round-robin sharding of our row orders, the
global batch of ``epochs``, the launcher and the accelerate config files."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from tide.align import build_alignment_cache
from tide.launch import launcher
from tide.tokenization import load_tokenizer, train_tokenizers
from tide.training.loop import TrainConfig
from tide.training.trainers import NoiseMixin, noise_seed

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("distill_step.py")
BLOCK = 8
WORDS = ["apple", "river", "castle", "engine", "garden", "lantern", "violin", "golden", "quiet"]


# ----------------------------------------------------------------------------- noise and order
def _old_seed(seed: int, step: int, micro: int) -> int:
    """The formula before multi-process training (the pushed tiny results were drawn with it)."""
    return (seed * 1_000_003 + step * 1009 + micro) % (2**63)


def _draws(process: int, ga: int, step: int, micro_batches: int) -> list[int]:
    """Seeds that NoiseMixin.noise_generator gives one process for ``micro_batches`` calls."""
    fake = SimpleNamespace(state=SimpleNamespace(global_step=step),
                           args=SimpleNamespace(seed=7, process_index=process,
                                                gradient_accumulation_steps=ga))
    return [NoiseMixin.noise_generator(fake).initial_seed() for _ in range(micro_batches)]


def test_process_0_draws_the_single_process_noise_and_others_continue_its_count():
    for step in (0, 3, 1000):
        for ga in (1, 2, 4):
            assert _draws(0, ga, step, ga) == [_old_seed(7, step, k) for k in range(1, ga + 1)]
        # 2 processes x GA 1 == 1 process x GA 2; 2 x GA 2 == 1 x GA 4
        assert _draws(0, 1, step, 1) + _draws(1, 1, step, 1) == _draws(0, 2, step, 2)
        assert _draws(0, 2, step, 2) + _draws(1, 2, step, 2) == _draws(0, 4, step, 4)
    assert noise_seed(7, 3, 2) == _old_seed(7, 3, 2)


def test_accelerate_shards_a_row_order_as_one_process_accumulates_it():
    """Process p of W reads batches p, p+W, ... of the shared order: step s of W processes with GA
    g covers the rows a single process covers with GA W*g (here a curriculum's fixed order)."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    from tide.training.curriculum import FixedOrderSampler

    order, batch = random.Random(0).sample(range(100), 48), 3
    single = list(BatchSampler(FixedOrderSampler(order), batch, drop_last=False))
    shards = [list(BatchSamplerShard(BatchSampler(FixedOrderSampler(order), batch, drop_last=False),
                                     num_processes=2, process_index=p)) for p in (0, 1)]
    for s in range(len(single) // 2):  # GA 1 on 2 processes vs GA 2 on one
        assert [shards[0][s], shards[1][s]] == single[2 * s:2 * s + 2]


def test_epochs_count_the_global_batch(monkeypatch):
    cfg = TrainConfig.from_dict({"epochs": 2, "batch_size": 4, "gradient_accumulation_steps": 2})
    args = cfg.arguments(Path("unused"))
    assert args.gradient_accumulation_steps == 2 and not args.bf16
    assert cfg.for_rows(100, processes=1).max_steps == 2 * 13  # 8 rows a step
    assert cfg.for_rows(100, processes=4).max_steps == 2 * 4  # 32 rows a step
    one_epoch = TrainConfig.from_dict({"epochs": 1, "batch_size": 4})
    assert one_epoch.for_rows(10).max_steps == 3  # as before
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cfg.for_rows(100).max_steps == 2 * 7


def test_records_keep_their_keys_at_the_defaults():
    default = TrainConfig.from_dict({}).record()
    assert "bf16" not in default and "gradient_accumulation_steps" not in default
    scaled = TrainConfig.from_dict({"bf16": True, "gradient_accumulation_steps": 2}).record()
    assert scaled["gradient_accumulation_steps"] == 2 and scaled["bf16"] is True


# ----------------------------------------------------------------------------- launcher, configs
def test_launcher_uses_python_on_one_gpu_and_accelerate_on_several():
    assert launcher(0) == launcher(1) == launcher(None) == "python"
    assert launcher(8, "fsdp", bf16=True) == (
        "accelerate launch --config_file config/accelerate/fsdp.yaml --num_processes 8 "
        "--mixed_precision bf16")
    assert launcher("2", "ddp") == "accelerate launch --config_file config/accelerate/ddp.yaml --num_processes 2"
    with pytest.raises(ValueError, match="strategy"):
        launcher(2, "zero3")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_accelerate_config_files_parse_and_launch(strategy, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    path = REPO / "config" / "accelerate" / f"{strategy}.yaml"
    cfg = load_config_from_file(str(path))
    assert isinstance(cfg, ClusterConfig) and cfg.mixed_precision == "bf16" and cfg.num_machines == 1
    assert cfg.distributed_type.value == {"ddp": "MULTI_GPU", "fsdp": "FSDP"}[strategy]
    command = launcher(4, strategy, bf16=False, root=REPO).split()[2:] + ["-m", "tide", "distill"]
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(command))
    assert args.num_processes == 4 and args.mixed_precision == "no"  # the command line wins
    env = prepare_multi_gpu_env(args)
    if strategy == "ddp":
        assert args.multi_gpu and not args.use_fsdp
        return
    assert env["FSDP_VERSION"] == "2" and env["FSDP_RESHARD_AFTER_FORWARD"] == "true"
    assert env["FSDP_TRANSFORMER_CLS_TO_WRAP"] == "Qwen3DecoderLayer"
    for key, value in env.items():
        if key.startswith("FSDP_") or key == "ACCELERATE_USE_FSDP":
            monkeypatch.setenv(key, value)
    from accelerate.utils import FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap == ["Qwen3DecoderLayer"]
    from tide.models.student import A2DQwen3LMHeadModel, student_config

    student = A2DQwen3LMHeadModel(student_config(64, 0, 1, size="unit", a2d=True))
    layers = {type(m).__name__ for m in student.modules()}
    assert "Qwen3DecoderLayer" in layers  # the class the config wraps is the student's layer


# ----------------------------------------------------------------------------- two processes
def _conversations(n: int = 8) -> list[list[dict]]:
    rng = random.Random(3)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + f" {rng.randrange(999)}."

    return [[{"role": "user", "content": text(3 + i % 3)},
             {"role": "assistant", "content": text(6 + 3 * (i % 4))}] for i in range(n)]


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """Tokenizers, alignment caches, a unit student and both unit teachers on disk: the inputs of
    ``tide distill`` for both pipelines, as the worker's spec file."""
    from tide.models.configs import llada2_unit_config, wedlm_unit_config
    from tide.models.llada2 import LLaDA2MoeModelLM
    from tide.models.student import A2DQwen3LMHeadModel, student_config
    from tide.models.wedlm import WeDLMForCausalLM

    out = tmp_path_factory.mktemp("multiprocess")
    convs = _conversations()
    dirs = train_tokenizers([m["content"] for c in convs for m in c] * 5, out / "tok",
                            {"student": {"vocab_size": 400}, "teacher_a": {"vocab_size": 420}})
    source = out / "distill.jsonl"
    source.write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs))
    s = load_tokenizer(dirs["student"])
    torch.manual_seed(0)
    A2DQwen3LMHeadModel(student_config(len(s), s.pad_token_id, s.eos_token_id, size="unit",
                                       a2d=True)).save_pretrained(out / "init")
    runs = []
    for name, pipeline, role, make, cls in (
            ("A", "cross", "teacher_a", llada2_unit_config, LLaDA2MoeModelLM),
            ("B", "shared", "teacher_b", wedlm_unit_config, WeDLMForCausalLM)):
        cache = out / f"align_{name}.safetensors"
        build_alignment_cache(pipeline, dirs["student"], dirs[role], source, cache, max_student_len=64,
                              max_teacher_len=96, progress=False)
        t = load_tokenizer(dirs[role])
        torch.manual_seed(1)
        cls(make(len(t), pad_token_id=t.pad_token_id, mask_token_id=t.mask_token_id,
                 eos_token_id=t.eos_token_id)).save_pretrained(out / role)
        # CompDemo in both: chunk level (A, the swapped TIDE-Shared) and token level (B, native)
        runs.append({"pipeline": pipeline, "variant": "tide_shared", "init": str(out / "init"),
                     "teacher": str(out / role), "cache": str(cache),
                     "student_tok": str(dirs["student"]), "teacher_tok": str(dirs[role])})
    train = {"max_steps": 1, "batch_size": 2, "lr": 1e-3, "warmup_ratio": 0.0, "logging_steps": 1,
             "save_steps": 100, "max_length": 64, "seed": 0}
    path = out / "spec.json"
    path.write_text(json.dumps({"runs": runs, "train": train, "block_size": BLOCK}))
    return path


def _curve(path: Path) -> dict[str, float]:
    with open(path, newline="") as fh:
        (row,) = csv.DictReader(fh)  # one step
    return {k: float(v) for k, v in row.items()}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])}


def test_two_processes_take_the_step_of_one_with_two_accumulation_steps(spec, tmp_path):
    single = subprocess.Popen([sys.executable, str(WORKER), str(spec), str(tmp_path / "one"), "2"],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ddp = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            "--nproc_per_node", "2", str(WORKER), str(spec), str(tmp_path / "two"), "1"],
                           env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logs = {name: proc.communicate(timeout=600)[0] for name, proc in (("one", single), ("two", ddp))}
    assert single.returncode == 0, logs["one"][-4000:]
    assert ddp.returncode == 0, logs["two"][-4000:]
    init = load_file(spec.parent / "init" / "model.safetensors")
    for pipeline in ("cross", "shared"):
        one = load_file(tmp_path / "one" / pipeline / "model" / "model.safetensors")
        two = load_file(tmp_path / "two" / pipeline / "model" / "model.safetensors")
        assert one.keys() == two.keys() == init.keys()
        update = max((one[k] - init[k]).abs().max().item() for k in init)
        diff = max((one[k] - two[k]).abs().max().item() for k in init)
        assert update > 1e-4, f"{pipeline}: the step changed nothing"
        assert diff <= 1e-4 * update, f"{pipeline}: 1 x GA 2 and 2 x GA 1 differ by {diff} (update {update})"
        print(f"{pipeline}: max |update| {update:.3e}, max |1xGA2 - 2xGA1| {diff:.3e}")
        # Adam's first step hardly depends on the gradient's scale: compare the gradient norm
        # (before clipping) and the loss, averaged over the 2 micro-batches / 2 processes
        curves = {n: _curve(tmp_path / n / pipeline / "model" / "loss.csv") for n in ("one", "two")}
        for key in ("loss", "grad_norm"):
            assert curves["two"][key] == pytest.approx(curves["one"][key], rel=1e-5), (pipeline, key)
        run = {n: json.loads((tmp_path / n / pipeline / "work" / "run.json").read_text())
               for n in ("one", "two")}
        assert run["two"]["processes"] == 2 and "gradient_accumulation_steps" not in run["two"]
        assert run["one"]["gradient_accumulation_steps"] == 2 and "processes" not in run["one"]
