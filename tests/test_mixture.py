"""The paper's distillation mixture (tide.mixture), read through `datasets` from local files of each
dataset's real schema, written here (never downloaded)."""

from __future__ import annotations

import json

import pytest

from tide.mixture import build_mixture, chat_rows
from tide.training.data import DataError

PAPER_PARTS = {  # as config/paper.yaml states them, minus the hub
    "tulu": {"dataset": "allenai/tulu-3-sft-mixture", "configs": [None], "split": "train",
             "format": "messages", "holdout": 0.05, "seed": 42, "require": None, "probe": True},
    "smoltalk": {"dataset": "HuggingFaceTB/smoltalk", "configs": ["all"], "split": "train",
                 "format": "messages", "holdout": 0, "seed": 42, "require": None, "probe": False},
    "opc_stage1": {"dataset": "OpenCoder-LLM/opc-sft-stage1", "split": "train",
                   "configs": ["filtered_infinity_instruct", "realuser_instruct"],
                   "format": "instruction_output", "holdout": 0.05, "seed": 42,
                   "require": "python", "probe": False},
    "opc_stage2": {"dataset": "OpenCoder-LLM/opc-sft-stage2", "split": "train",
                   "configs": ["educational_instruct"], "format": "instruction_output",
                   "holdout": 0.05, "seed": 42, "require": "python", "probe": False},
}


def _write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def local_copies(tmp_path):
    """Local copies in the real schemas: tulu {id, messages, source}; smoltalk {messages, source};
    opc stage 1 {instruction, output, tag}; opc stage 2 educational {instruction, output, code,
    entry_point, testcase}."""
    root = tmp_path / "hub"
    _write(root / "allenai/tulu-3-sft-mixture/default", [
        {"id": f"tulu_{i}", "source": "ai2-adapt-dev/flan",
         "messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": f"What is {i} + {i}?"},
                      {"role": "assistant", "content": f"{2 * i}"}]} for i in range(200)])
    _write(root / "HuggingFaceTB/smoltalk/all", [
        {"source": "smol-magpie-ultra",
         "messages": [{"role": "user", "content": f"Hello {i}"},
                      {"role": "assistant", "content": f"Hi {i}!"},
                      {"role": "user", "content": "Thanks"},
                      {"role": "assistant", "content": "You're welcome."}]} for i in range(30)]
        + [{"source": "smol-constraints",  # ends with a user turn: nothing to learn, dropped
            "messages": [{"role": "user", "content": "Anyone?"}]}])
    for config, n in (("filtered_infinity_instruct", 40), ("realuser_instruct", 20)):
        _write(root / "OpenCoder-LLM/opc-sft-stage1" / config, [
            {"instruction": f"Task {i}", "tag": "code",
             "output": (f"```python\nprint({i})\n```" if i % 2 else f"```js\nlog({i})\n```")}
            for i in range(n)])
    _write(root / "OpenCoder-LLM/opc-sft-stage2/educational_instruct", [
        {"instruction": f"Write f{i}", "output": f"def f{i}(): pass  # python", "code": "",
         "entry_point": f"f{i}", "testcase": []} for i in range(40)])
    return root


def _section(local_dir, parts=PAPER_PARTS, probe_rows=5):
    return {"source": "mixture", "local_dir": str(local_dir), "probe_rows": probe_rows,
            "mixture": parts}


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_mixture_concatenates_the_training_parts(local_copies, tmp_path):
    counts = build_mixture(_section(local_copies), tmp_path / "out")
    rows = _rows(tmp_path / "out" / "distill.jsonl")
    parts = counts["parts"]
    assert parts["tulu"]["distill"] == 190 and parts["tulu"]["probe_candidates"] == 10  # 95 / 5
    assert parts["smoltalk"]["distill"] == 30  # no holdout; the user-final row dropped
    # opc: 95/5 of each config, then only rows whose answer says python (the odd ones)
    assert 0 < parts["opc_stage1"]["distill"] <= 30
    assert all("python" in r["messages"][-1]["content"] for r in rows if r["family"] == "opc_stage1")
    assert parts["opc_stage2"]["distill"] == 38
    assert counts["distill"] == len(rows) == sum(p["distill"] for p in parts.values())
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    opc = next(r for r in rows if r["family"] == "opc_stage2")
    assert opc["messages"] == [{"role": "user", "content": opc["messages"][0]["content"]},
                               {"role": "assistant", "content": opc["messages"][1]["content"]}]
    assert len({r["id"] for r in rows}) == len(rows)


def test_holdout_is_seeded_and_disjoint_and_gives_the_probe_rows(local_copies, tmp_path):
    build_mixture(_section(local_copies), tmp_path / "a")
    build_mixture(_section(local_copies), tmp_path / "b")
    for name in ("distill.jsonl", "probe.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    probe = _rows(tmp_path / "a" / "probe.jsonl")
    train = _rows(tmp_path / "a" / "distill.jsonl")
    assert len(probe) == 5 and {r["family"] for r in probe} == {"tulu"}
    held = {r["messages"][1]["content"] for r in probe}
    assert not held & {r["messages"][1]["content"] for r in train if r["family"] == "tulu"}
    other = dict(PAPER_PARTS, tulu=dict(PAPER_PARTS["tulu"], seed=7))
    build_mixture(_section(local_copies, other), tmp_path / "c")
    assert (tmp_path / "c" / "probe.jsonl").read_bytes() != (tmp_path / "a" / "probe.jsonl").read_bytes()


def test_broken_row_is_named(local_copies, tmp_path):
    _write(local_copies / "HuggingFaceTB/smoltalk/all",
           [{"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]}])
    with pytest.raises(DataError, match=r"data.mixture.smoltalk \(all\) row 0"):
        build_mixture(_section(local_copies), tmp_path / "out")
    assert not (tmp_path / "out" / "distill.jsonl").exists()  # nothing half-written


def test_instruction_rows_need_both_fields():
    with pytest.raises(DataError, match="instruction"):
        list(chat_rows([{"instruction": "x"}], "opc", "c", "instruction_output", None))


def test_missing_local_copy_and_no_hub_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    parts = {"tulu": PAPER_PARTS["tulu"]}
    with pytest.raises(DataError, match="allenai/tulu-3-sft-mixture.*no local copy"):
        build_mixture(_section(tmp_path / "empty", parts), tmp_path / "out")
