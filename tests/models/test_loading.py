"""Checkpoint loader: picks our classes by model_type, checks files first, reports clear errors
naming the file."""

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from tide.models import loading
from tide.models.configs import llada2_unit_config, wedlm_unit_config
from tide.models.llada2 import LLaDA2MoeModelLM
from tide.models.loading import CheckpointError, check_safetensors_file, load_model
from tide.models.wedlm import WeDLMForCausalLM

torch.set_num_threads(1)

IDS = torch.randint(0, 318, (2, 7), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def llada2_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = LLaDA2MoeModelLM(llada2_unit_config()).eval()
    with torch.no_grad():
        model.model.layers[1].mlp.gate.expert_bias.normal_()
    directory = tmp_path_factory.mktemp("llada2")
    model.save_pretrained(directory)
    return directory, model


@pytest.fixture(scope="module")
def wedlm_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = WeDLMForCausalLM(wedlm_unit_config()).eval()
    directory = tmp_path_factory.mktemp("wedlm")
    model.save_pretrained(directory)
    return directory, model


def copy_checkpoint(source, target):
    target.mkdir(exist_ok=True)
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def same_logits(a, b) -> bool:
    with torch.no_grad():
        return torch.allclose(
            a(input_ids=IDS).logits.float(), b(input_ids=IDS).logits.float(), atol=1e-5, rtol=0
        )


def test_loads_each_teacher_with_its_class(llada2_dir, wedlm_dir):
    for (directory, model), cls in [(llada2_dir, LLaDA2MoeModelLM), (wedlm_dir, WeDLMForCausalLM)]:
        loaded = load_model(directory)
        assert type(loaded) is cls and not loaded.training
        assert same_logits(loaded, model)
    assert type(load_model(str(llada2_dir[0]), kind="llada2")) is LLaDA2MoeModelLM
    with pytest.raises(CheckpointError, match="expected 'wedlm'"):
        load_model(llada2_dir[0], kind="wedlm")


def test_dtype_bf16_keeps_expert_bias_fp32_and_float32_logits(llada2_dir):
    loaded = load_model(llada2_dir[0], dtype="bf16")
    assert loaded.lm_head.weight.dtype == torch.bfloat16
    bias = loaded.model.layers[1].mlp.gate.expert_bias
    assert bias.dtype == torch.float32
    assert torch.equal(bias, llada2_dir[1].model.layers[1].mlp.gate.expert_bias)
    assert loaded(input_ids=IDS).logits.dtype == torch.float32
    with pytest.raises(ValueError, match="unknown dtype"):
        load_model(llada2_dir[0], dtype="float13")


def test_missing_directory_config_and_weights(tmp_path, llada2_dir):
    with pytest.raises(CheckpointError, match="missing checkpoint directory"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"missing config\.json"):
        load_model(tmp_path)
    directory = copy_checkpoint(llada2_dir[0], tmp_path / "ckpt")
    (directory / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing weights file") as err:
        load_model(directory)
    assert str(directory) in str(err.value)


def test_truncated_safetensors_is_reported_with_the_file_name(tmp_path, llada2_dir):
    directory = copy_checkpoint(llada2_dir[0], tmp_path / "ckpt")
    weights = directory / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_model(directory)
    assert str(weights) in str(err.value)
    weights.write_bytes(data[:4])
    with pytest.raises(CheckpointError, match="no header"):
        check_safetensors_file(weights)
    weights.write_bytes(data[:8] + b"{not json" + data[17:])
    with pytest.raises(CheckpointError, match="corrupt safetensors header") as err:
        check_safetensors_file(weights)
    assert str(weights) in str(err.value)
    weights.write_bytes(data + b"\0\0")
    with pytest.raises(CheckpointError, match="trailing bytes"):
        check_safetensors_file(weights)
    weights.write_bytes(data)
    check_safetensors_file(weights)


def test_sharded_checkpoint_missing_and_truncated_shards(tmp_path, wedlm_dir):
    directory = tmp_path / "sharded"
    wedlm_dir[1].save_pretrained(directory, max_shard_size="100KB")
    shards = sorted(directory.glob("model-*.safetensors"))
    assert len(shards) > 1 and (directory / "model.safetensors.index.json").is_file()
    assert same_logits(load_model(directory), wedlm_dir[1])
    data = shards[-1].read_bytes()
    shards[-1].write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_model(directory)
    assert shards[-1].name in str(err.value)
    shards[-1].unlink()
    with pytest.raises(CheckpointError, match="missing weights file") as err:
        load_model(directory)
    assert shards[-1].name in str(err.value)


def test_unknown_model_type_and_corrupt_config(tmp_path, llada2_dir):
    directory = copy_checkpoint(llada2_dir[0], tmp_path / "ckpt")
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"model_type": "no_such_model"}))
    with pytest.raises(CheckpointError, match="unknown model_type 'no_such_model'") as err:
        load_model(directory)
    assert str(config_path) in str(err.value)
    config_path.write_text("{oops")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(directory)
    config_path.write_text(json.dumps({k: v for k, v in config.items() if k != "model_type"}))
    with pytest.raises(CheckpointError, match="no 'model_type'"):
        load_model(directory)


def test_extra_keys_warn_missing_expert_bias_is_zero_filled_other_missing_keys_fail(
    tmp_path, llada2_dir
):
    directory = copy_checkpoint(llada2_dir[0], tmp_path / "ckpt")
    weights = directory / "model.safetensors"
    state = load_file(weights)
    save_file(
        state | {"model.mtp_layers.0.weight": torch.ones(3)}, weights, metadata={"format": "pt"}
    )
    with pytest.warns(UserWarning, match="unexpected keys"):
        loaded = load_model(directory)
    assert same_logits(loaded, llada2_dir[1])

    without_bias = {k: v for k, v in state.items() if not k.endswith("expert_bias")}
    save_file(without_bias, weights, metadata={"format": "pt"})
    with pytest.warns(UserWarning, match="expert_bias"):
        loaded = load_model(directory)
    assert torch.equal(loaded.model.layers[1].mlp.gate.expert_bias, torch.zeros(8))

    save_file(
        {k: v for k, v in state.items() if "experts.3.up_proj" not in k},
        weights,
        metadata={"format": "pt"},
    )
    with (
        warnings.catch_warnings(),
        pytest.raises(CheckpointError, match="experts.3.up_proj") as err,
    ):
        warnings.simplefilter("ignore")
        load_model(directory)
    assert str(weights) in str(err.value)


def test_hub_ids_go_through_the_hub_cache(monkeypatch, llada2_dir):
    requested = []

    def fake_download(repo_id):
        requested.append(repo_id)
        return llada2_dir[0]

    monkeypatch.setattr(loading, "_download_snapshot", fake_download)
    assert type(load_model("inclusionAI/LLaDA2.0-mini")) is LLaDA2MoeModelLM
    assert requested == ["inclusionAI/LLaDA2.0-mini"]

    def offline(repo_id):
        raise OSError("offline")

    monkeypatch.setattr(loading, "_download_snapshot", offline)
    with pytest.raises(CheckpointError, match="could not be fetched from the hub"):
        load_model("tencent/WeDLM-8B-Instruct")
