"""The generated world: determinism, formats, reference solvers, held-out isolation, lengths."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tide.eval.sandbox import check_solution
from tide.world import (
    CHAR_BUDGET,
    FAMILIES,
    WorldConfig,
    bbh_user_turn,
    build_world,
    generate_world,
    get_family,
    solve,
)
from tide.world.facts import UNIQUE_RELATIONS, quiz_line
from tide.world.generate import heldout_records, make_families, make_splits
from tide.world.split import Split

SMOKE = {"seed": 7, "sizes": {"pretrain_docs": 800, "sft_per_family": 60,
                              "distill_per_family": 60, "distill_unseen_per_family": 20,
                              "signal_per_family": 8, "eval_per_family": 30}}
TRAINED = ["sft", "distill"]  # the chat splits some model trains on
UNSEEN = ["distill_unseen", "signal_probe"]  # the ones no model trains on
FILES = ["corpus/pretrain.jsonl", *(f"corpus/{s}.jsonl" for s in TRAINED + UNSEEN),
         *(f"tasks/{f}.jsonl" for f in FAMILIES)]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    manifest = generate_world(SMOKE, out)
    return out, manifest


@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig.from_dict(SMOKE))


@pytest.fixture(scope="module")
def heldout(smoke) -> dict[str, list[dict]]:
    return {f: _rows(smoke[0] / "tasks" / f"{f}.jsonl") for f in FAMILIES}


@pytest.fixture(scope="module")
def training(smoke) -> list[dict]:
    """Every chat of the corpus: the held-out checks below cover the unseen splits too."""
    return [r for s in TRAINED + UNSEEN for r in _rows(smoke[0] / "corpus" / f"{s}.jsonl")]


@pytest.fixture(scope="module")
def pretrain(smoke) -> list[dict]:
    return _rows(smoke[0] / "corpus" / "pretrain.jsonl")


# --- determinism --------------------------------------------------------------------------
def test_same_config_gives_byte_identical_files(smoke, tmp_path):
    out, manifest = smoke
    again = generate_world(SMOKE, tmp_path)
    assert set(manifest["files"]) == set(FILES)
    for rel in FILES:
        assert _sha(out / rel) == _sha(tmp_path / rel) == manifest["files"][rel], rel
    assert (out / "manifest.json").read_bytes() == (tmp_path / "manifest.json").read_bytes()
    assert again == manifest
    assert (out / "corpus" / "sft.jsonl").read_bytes().count(b"\r") == 0


def test_files_do_not_depend_on_python_hash_seed(smoke, tmp_path):
    code = (f"import json, sys; from tide.world import generate_world; "
            f"print(json.dumps(generate_world({SMOKE!r}, sys.argv[1])['files']))")
    for hash_seed in ("1", "987"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)],
                             capture_output=True, text=True, env=env, check=True).stdout
        assert json.loads(out) == smoke[1]["files"]


def test_another_seed_changes_every_file(smoke, tmp_path):
    other = generate_world({**SMOKE, "seed": 8}, tmp_path)
    for rel in FILES:
        assert other["files"][rel] != smoke[1]["files"][rel], rel


def test_unknown_key_is_rejected_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config key 'eval_items' in world\.sizes "):
        generate_world({"sizes": {"eval_items": 3}}, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_manifest_counts_match_the_files(smoke, heldout, training, pretrain):
    manifest = smoke[1]
    counts = manifest["counts"]
    assert manifest["seed"] == 7 and manifest["config"]["sizes"]["eval_per_family"] == 30
    assert {f: len(rows) for f, rows in heldout.items()} == counts["heldout"]
    assert all(n == 30 for n in counts["heldout"].values())
    assert Counter(r["family"] for r in training) == Counter(
        {f: sum(counts[s][f] for s in TRAINED + UNSEEN) for f in FAMILIES})
    for s in UNSEEN:
        assert all(counts[s][f] + counts[f"{s}_dropped"][f] == SMOKE["sizes"][
            "distill_unseen_per_family" if s == "distill_unseen" else "signal_per_family"]
            for f in FAMILIES)
    assert set(manifest["splits"]) == {"pretrain", *TRAINED, *UNSEEN}
    assert sum(counts["pretrain"].values()) == len(pretrain) == SMOKE["sizes"]["pretrain_docs"]


def _pair(row: dict) -> tuple[str, str]:
    user, reply = row["messages"]
    return user["content"], reply["content"]


def test_unseen_splits_share_no_row_with_any_training_split(smoke):
    """Distillation and probe rows: no (prompt, response) and not even a prompt of them occurs in a
    split some model trained on, or in the other unseen split; the held-out disjointness of every
    chat split is checked by the tests below."""
    rows = {s: _rows(smoke[0] / "corpus" / f"{s}.jsonl") for s in TRAINED + UNSEEN}
    trained_pairs = {_pair(r) for s in TRAINED for r in rows[s]}
    trained_prompts = {p for p, _ in trained_pairs}
    assert rows["distill_unseen"] and rows["signal_probe"]
    for s in UNSEEN:
        pairs = [_pair(r) for r in rows[s]]
        assert not set(pairs) & trained_pairs, s
        assert not {p for p, _ in pairs} & trained_prompts, s
        assert len({p for p, _ in pairs}) == len(pairs), s
        assert all(r["id"].split("/")[1] == s for r in rows[s])
    probe = {p for p, _ in map(_pair, rows["signal_probe"])}
    assert not probe & {p for p, _ in map(_pair, rows["distill_unseen"])}


def test_unseen_splits_leave_the_trained_splits_byte_identical(smoke, tmp_path):
    """Sizing the unseen splits (even to 0) changes no byte of the splits the pushed models saw."""
    sizes = {**SMOKE["sizes"], "distill_unseen_per_family": 0, "signal_per_family": 3}
    other = generate_world({**SMOKE, "sizes": sizes}, tmp_path)
    for rel in FILES:
        if not any(s in rel for s in UNSEEN):
            assert other["files"][rel] == smoke[1]["files"][rel], rel
    assert (tmp_path / "corpus" / "distill_unseen.jsonl").read_text() == ""


# --- formats ------------------------------------------------------------------------------
def test_heldout_fields(heldout):
    ids = set()
    for fam, rows in heldout.items():
        for r in rows:
            assert r["family"] == fam and r["id"] not in ids
            ids.add(r["id"])
            assert isinstance(r["prompt"], str) and isinstance(r["answer"], str) and r["answer"]
            assert (r["subtask"] is None) == (fam != "bbh")
            if fam in ("mmlu", "mmlu_pro", "hellaswag"):
                n = {"mmlu": 4, "mmlu_pro": 10, "hellaswag": 4}[fam]
                assert len(r["choices"]) == n == len(set(r["choices"]))
                letters = "ABCDEFGHIJ"[:n]
                for letter, choice in zip(letters, r["choices"]):
                    assert f"\n{letter}. {choice}\n" in r["prompt"]
                assert r["answer"] in (letters.lower() if fam == "hellaswag" else letters)
            if fam in ("humaneval", "mbpp"):
                assert {"entry_point", "test", "canonical_solution", "gen_prefix"} <= set(r)
                assert r["test"].startswith("def check(candidate):")
            if fam == "bbh":
                assert len(r["fewshot"]) == 3
                assert all(ex["response"].endswith(".") and "So the answer is" in ex["response"]
                           for ex in r["fewshot"])
    assert heldout["mmlu"][0]["prompt"].endswith("\nAnswer:")
    assert heldout["hellaswag"][0]["prompt"].endswith(
        "\nYou may choose from 'A', 'B', 'C', 'D'.\nAnswer:")
    assert heldout["mmlu_pro"][0]["prompt"].startswith("Question:\n")
    assert heldout["gsm8k"][0]["prompt"].startswith("Q: ")
    assert heldout["math"][0]["prompt"].startswith("Problem:\n")


def test_conversations_format(training):
    ids = [c["id"] for c in training]
    assert len(ids) == len(set(ids))
    for c in training:
        assert c["family"] in FAMILIES
        assert [m["role"] for m in c["messages"]] == ["user", "assistant"]
        assert all(m["content"] for m in c["messages"])
    # the families are interleaved, not in blocks
    assert len({c["family"] for c in training[:40]}) >= 6


# --- answers --------------------------------------------------------------------------------
# lm-eval style answer extraction (bd3lm.md §4), written independently of the generator
def _extract(family: str, response: str) -> str | None:
    pattern = {"mmlu": r"^([A-Z])", "mmlu_pro": r"answer is \(?([ABCDEFGHIJ])\)?",
               "hellaswag": r"([abcd])", "gsm8k": r"#### (-?\d+)$",
               "bbh": r"(?<=the answer is )(.*)(?=.)", "math": r"\\boxed\{([^{}]*)\}"}[family]
    found = re.findall(pattern, response.lower() if family == "hellaswag" else response)
    return (found[-1] if family == "math" else found[0]) if found else None


def test_solver_reproduces_every_heldout_answer(heldout, world):
    for rows in heldout.values():
        for r in rows:
            assert solve(r, world) == r["answer"], r["id"]


def test_reference_replies_carry_the_solver_answer(training, world):
    for c in training:
        user, reply = (m["content"] for m in c["messages"])
        if c["family"] in ("humaneval", "mbpp"):
            continue
        gold = solve({"family": c["family"], "prompt": user, "id": c["id"]}, world)
        assert _extract(c["family"], reply) == gold, c["id"]
        assert "\n\n" not in reply and ("Q" not in reply or c["family"] != "bbh")


def test_bbh_answers_against_independent_references(heldout):
    for r in heldout["bbh"]:
        q = r["prompt"].split("\n")[0][len("Q: "):]
        if r["subtask"] == "boolean_expressions":
            expr = q[: -len(" is")]
            assert set(expr.split()) <= {"not", "and", "or", "True", "False", "(", ")"}
            assert str(eval(expr, {"__builtins__": {}})) == r["answer"]
        elif r["subtask"] == "word_sorting":
            words = q.split("List: ")[1].split()
            assert r["answer"] == " ".join(sorted(words))
        elif r["subtask"] == "dyck_languages":
            stack = []
            for t in q.split(": ")[1].split():
                if t in "([{<":
                    stack.append(t)
                else:
                    assert "([{<"[")]}>".index(t)] == stack.pop()
            assert r["answer"] == " ".join({"(": ")", "[": "]", "{": "}", "<": ">"}[b]
                                           for b in reversed(stack))
        else:
            m = re.match(r"Today is (\d+)/(\d+)/(\d+)\. What is the date (\d+) days? (\w+)", q)
            day = dt.date(int(m[3]), int(m[1]), int(m[2]))
            # slow reference: step one day at a time
            for _ in range(int(m[4])):
                if m[5] == "later":
                    last = calendar.monthrange(day.year, day.month)[1]
                    day = (day.replace(day=day.day + 1) if day.day < last else
                           dt.date(day.year + (day.month == 12), day.month % 12 + 1, 1))
                else:
                    day = day - dt.timedelta(days=1)
            assert r["answer"] == f"{day.month:02d}/{day.day:02d}/{day.year}"


def test_math_answers_against_independent_references(heldout):
    for r in heldout["math"]:
        line = r["prompt"].split("\n")[1]
        if m := re.fullmatch(r"Solve for \$x\$: \$(\d+)x ([+-] \d+) = (-?\d+)\$\.", line):
            x = int(r["answer"])
            assert int(m[1]) * x + int(m[2].replace(" ", "")) == int(m[3])
        elif m := re.fullmatch(r"Evaluate \$(.*)\$\.", line):
            assert str(eval(m[1], {"__builtins__": {}})) == r["answer"]
        elif m := re.fullmatch(r"If \$f\(x\) = (\d+)x ([+-] \d+)\$, what is \$f\((-?\d+)\)\$\?",
                               line):
            assert int(m[1]) * int(m[3]) + int(m[2].replace(" ", "")) == int(r["answer"])
        else:
            m = re.fullmatch(r"Simplify \$(.*)\$\.", line)
            total = sum(int(c.replace(" ", "")) for c in re.findall(r"([+-]? ?\d+)x", m[1]))
            assert r["answer"] == f"{total}x"


def test_gsm8k_chains_of_thought_compute(training):
    for c in training:
        if c["family"] != "gsm8k":
            continue
        reply = c["messages"][1]["content"]
        steps = re.findall(r"([\d*/+-]+)=(\d+)\.", reply)
        assert 2 <= len(steps) <= 3
        for lhs, rhs in steps:
            assert eval(lhs, {"__builtins__": {}}) == int(rhs)
        assert reply.endswith(f"#### {steps[-1][1]}")


def _sentences(pretrain: list[dict], kind: str) -> set[str]:
    out = set()
    for doc in pretrain:
        if doc["family"] == kind:
            out.update(s.strip() for s in re.split(r"(?<=\.) ", doc["text"]))
    return out


def test_knowledge_answers_are_stated_in_pretraining(heldout, pretrain):
    facts = _sentences(pretrain, "facts")
    text = " ".join(facts)
    for r in heldout["mmlu"]:
        gold = r["choices"]["ABCD".index(r["answer"])]
        q = r["prompt"].split("\n")[0]
        name = next(w for w in re.findall(r"\b[A-Z][a-z]+\b", q)
                    if w not in {"What", "Which", "In", "The"})
        assert any(name in s and re.search(rf"\b{re.escape(gold)}\b", s) for s in facts), q
    for r in heldout["mmlu_pro"]:  # both hops are in pretraining
        gold = r["choices"]["ABCDEFGHIJ".index(r["answer"])]
        x = re.search(r"(?:where|capital is|the river) (\w+)", r["prompt"])[1]
        lands = {m for s in facts if x in s for m in re.findall(r"\b[A-Z][a-z]+\b", s)} - {
            x, "The", "In", "People"}
        assert any(re.search(rf"\b{re.escape(gold)}\b", s) and any(land in s for land in lands)
                   for s in facts), r["prompt"]
    assert text


def test_hellaswag_answers_follow_pretrain_stories(heldout, pretrain):
    stories = [d["text"] for d in pretrain if d["family"] == "stories"]
    for r in heldout["hellaswag"]:
        first = r["prompt"].split("\n")[0]
        label, context = first.split(": ", 1)
        last_step = context.rsplit(".", 1)[0].rsplit(". ", 1)[-1].split(" ", 1)[1]
        gold = r["choices"]["abcd".index(r["answer"])]
        follows = re.compile(rf"^{re.escape(label)}: .*\b(\w+) {re.escape(last_step)}\. \1 "
                             rf"{re.escape(gold)}")
        assert any(follows.search(s) for s in stories), first


@pytest.mark.parametrize("family", ["humaneval", "mbpp"])
def test_canonical_solutions_pass_and_wrong_ones_fail(heldout, family):
    for r in heldout[family][:30]:
        program = (r["stub"] + r["canonical_solution"]) if family == "humaneval" \
            else r["canonical_solution"]
        res = check_solution(program, r["test"], r["entry_point"], timeout_s=5.0)
        assert res.status == "passed", (r["id"], res.stderr)
        # a wrong solution: the first constant of the function body changed
        head, body = (r["stub"], r["canonical_solution"]) if family == "humaneval" \
            else program.split("\n", 1)
        if re.search(r"\d+", body):
            body = re.sub(r"\d+", lambda m: str(int(m[0]) + 1), body, count=1)
        else:  # a string constant: change a letter, lengthen a word
            body = re.sub(r"'(\w)'", lambda m: "'z'" if m[1] != "z" else "'y'", body, count=1)
            body = re.sub(r"'(\w\w+)'", lambda m: f"'{m[1]}x'", body, count=1)
        wrong = head + body if family == "humaneval" else f"{head}\n{body}"
        assert wrong != program
        bad = check_solution(wrong, r["test"], r["entry_point"], timeout_s=5.0)
        assert bad.status == "failed", (r["id"], wrong)


# --- held-out isolation -------------------------------------------------------------------
def _question(family: str, text: str) -> str:
    """The question part of a prompt / user turn (the last one, for few-shot bbh turns)."""
    lines = text.split("\n")
    if family == "mmlu_pro":
        return lines[lines.index("Question:") + 1] if "Question:" in lines else lines[0]
    if family in ("gsm8k", "bbh"):
        return [ln for ln in lines if ln.startswith("Q: ")][-1]
    if family == "math":
        return lines[1]
    if family == "humaneval":
        return re.search(r"def .*\n.*\n", text)[0]
    if family == "mbpp":
        return next(ln for ln in lines if ln.startswith("Write a function"))
    return lines[0]  # mmlu question / hellaswag context


def _norm(text: str) -> str:
    """Per line: lower case, sentence punctuation and extra whitespace dropped (brackets kept)."""
    return "\n".join(" ".join(re.sub(r"[.,;:!?'\"`$]+", " ", line.lower()).split())
                     for line in text.strip().split("\n"))


def test_no_heldout_question_occurs_in_training(heldout, training, pretrain):
    train_q = {_norm(_question(c["family"], c["messages"][0]["content"])) for c in training}
    # every training text, line by line: a held-out question must not be any run of whole lines
    corpus = "\n" + "\n".join(_norm(d["text"]) for d in pretrain) + "\n" + "\n".join(
        _norm(m["content"]) for c in training for m in c["messages"]) + "\n"
    for fam, rows in heldout.items():
        for r in rows:
            q = _norm(_question(fam, r["prompt"]))
            assert q not in train_q, r["id"]
            assert f"\n{q}\n" not in corpus, r["id"]


def test_no_heldout_problem_occurs_in_training(heldout, training, pretrain, world):
    """Same underlying problem = same key: parameters read back from the text (wording and names
    aside), checked for every family over sft, distill and pretrain."""
    families = {f: get_family(f, world) for f in FAMILIES}
    held = {p.key: r["id"] for f, rows in heldout.items() for r in rows
            for p in families[f].parse_all(r["prompt"])}
    assert len(held) == sum(len(rows) for rows in heldout.values())  # keys are distinct
    texts = [m["content"] for c in training for m in c["messages"]] + [d["text"] for d in pretrain]
    n_train = 0
    for text in texts:
        for fam in families.values():
            for p in fam.parse_all(text):
                n_train += 1
                assert p.key not in held, (p.key, held.get(p.key))
    assert n_train > len(training)  # the parsers do find the training problems


def test_code_and_hellaswag_entities_stay_out_of_training(heldout, training, pretrain):
    texts = [m["content"] for c in training for m in c["messages"]] + [d["text"] for d in pretrain]
    blob = "\n".join(texts)
    for fam in ("humaneval", "mbpp"):
        for r in heldout[fam]:
            assert f"{r['entry_point']}(" not in blob, r["id"]
    for r in heldout["hellaswag"]:
        label, context = r["prompt"].split("\n")[0].split(": ", 1)
        actor = context.split(" ", 1)[0]
        assert f"{label}: {actor} " not in blob, r["id"]


def test_bbh_exemplars_are_training_items(heldout, world):
    bbh = get_family("bbh", world)
    held = {bbh.parse(r["prompt"]).key for r in heldout["bbh"]}
    for r in heldout["bbh"]:
        keys = [bbh.parse(ex["prompt"]).key for ex in r["fewshot"]]
        assert not set(keys) & held
        assert {bbh.parse(ex["prompt"]).stratum for ex in r["fewshot"]} == {r["subtask"]}
        full = bbh_user_turn(r)
        assert full.endswith(r["prompt"]) and full.count("Q: ") == 4


# --- calibration: the tiny scale --------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return out, generate_world({}, out)


def test_tiny_scale_sizes(tiny):
    counts = tiny[1]["counts"]
    for fam in ("gsm8k", "bbh", "math"):
        assert counts["heldout"][fam] == 1000
    assert counts["heldout"]["hellaswag"] >= 990
    assert min(counts["heldout"].values()) >= 250  # small problem spaces: hundreds
    assert all(counts["sft"][f] == counts["distill"][f] == 2000 for f in FAMILIES)
    # unseen rows: 300 per family, except humaneval, whose renders the training splits use up
    assert counts["distill_unseen"] == {f: 0 if f == "humaneval" else 300 for f in FAMILIES}


def test_tiny_scale_lengths(tiny):
    budget = CHAR_BUDGET["benchmark"]
    by_family: dict[str, list[int]] = {}
    for c in _rows(tiny[0] / "corpus" / "sft.jsonl"):
        by_family.setdefault(c["family"], []).append(sum(len(m["content"])
                                                         for m in c["messages"]))
    for fam, lengths in by_family.items():
        under = sum(n <= budget for n in lengths) / len(lengths)
        assert under >= 0.95, (fam, under)
    overall = [n for v in by_family.values() for n in v]
    assert sum(n <= 300 for n in overall) / len(overall) > 0.75  # most pairs under ~300 chars


def test_every_fact_is_stated_many_times(tiny, world):
    cfg = WorldConfig.from_dict({})
    fb = build_world(cfg).facts
    counts = Counter()
    index = {(e, v): (r, e, v) for r, e, v in fb.facts()}
    for doc in _rows(tiny[0] / "corpus" / "pretrain.jsonl"):
        if doc["family"] != "facts":
            continue
        for sentence in re.split(r"(?<=\.) ", doc["text"]):
            words = set(re.findall(r"\w+", sentence))
            for (e, v), fact in index.items():
                if e in words and v in words:
                    counts[fact] += 1
    assert set(counts) == set(fb.facts())
    assert min(counts.values()) >= 30


def test_every_fact_is_quizzed_many_times(tiny):
    """Every fact is asked in the quizzes (capital and river also backwards), in wordings that are
    not the mmlu questions."""
    tiny_world = build_world(WorldConfig.from_dict({}))
    fb = tiny_world.facts
    quizzes = "\n".join(d["text"] for d in _rows(tiny[0] / "corpus" / "pretrain.jsonl")
                        if d["family"] == "quiz")
    lines = [quiz_line(r, e, v) for r, e, v in fb.facts()]
    lines += [quiz_line(r, e, fb.value(r, e), inverse=True) for e in fb.lands
              for r in UNIQUE_RELATIONS]
    counts = [quizzes.count(line) for line in lines]
    assert min(counts) >= 20, min(counts)
    mmlu = get_family("mmlu", tiny_world)
    questions = set(re.findall(r"[A-Z][^?.]*\?", quizzes))
    assert len(questions) > 400 and not [q for q in questions if mmlu.parse(q)]


def test_compact_prompts_are_shorter(tmp_path):
    generate_world({**SMOKE, "prompt_style": "compact"}, tmp_path)
    world = build_world(WorldConfig.from_dict({**SMOKE, "prompt_style": "compact"}))
    rows = _rows(tmp_path / "corpus" / "sft.jsonl")
    lengths = sorted(sum(len(m["content"]) for m in c["messages"]) for c in rows)
    assert lengths[int(0.95 * len(rows))] <= CHAR_BUDGET["compact"]
    for f in FAMILIES:
        for r in _rows(tmp_path / "tasks" / f"{f}.jsonl"):
            assert solve(r, world) == r["answer"]
    assert "Which ending" not in (tmp_path / "tasks" / "hellaswag.jsonl").read_text()


def test_heldout_renders_ask_each_problem_again_with_other_options(tmp_path):
    """A small fact base with ``heldout_renders: 3``: round after round over the held-out problems
    (so any prefix asks distinct problems), every prompt distinct, none in training."""
    cfg = {**SMOKE, "facts": {"n_lands": 10, "n_people": 4},
           "sizes": {**SMOKE["sizes"], "eval_per_family": 1000},
           "mmlu": {"heldout_renders": 3}, "mmlu_pro": {"heldout_renders": 3}}
    generate_world(cfg, tmp_path)
    world = build_world(WorldConfig.from_dict(cfg))
    splits = make_splits(world, make_families(world))
    train_prompts = {c["messages"][0]["content"] for c in _rows(tmp_path / "corpus" / "sft.jsonl")}
    for fam in ("mmlu", "mmlu_pro"):
        family = get_family(fam, world)
        rows = _rows(tmp_path / "tasks" / f"{fam}.jsonl")
        keys = [family.parse(r["prompt"]).key for r in rows]
        n = len(set(keys))
        assert len(rows) == 3 * n == 3 * len(splits[fam].heldout)
        assert keys[:n] == keys[n:2 * n] == keys[2 * n:]  # three rounds, same problem order
        assert len({r["prompt"] for r in rows}) == len(rows)
        assert not train_prompts & {r["prompt"] for r in rows}
        assert all(solve(r, world) == r["answer"] for r in rows)


def test_a_heldout_item_that_cannot_be_made_distinct_is_reported(caplog):
    """Held-out prompts are re-rendered until new; one that stays a repeat is written, and logged."""
    import random

    world = build_world(WorldConfig.from_dict(SMOKE))
    families = make_families(world)
    fam = families["mmlu"]
    problem = make_splits(world, families)["mmlu"].heldout[0]
    render = fam.render
    fam.render = lambda p, rng: render(p, random.Random(0))  # one prompt only, whatever the rng
    with caplog.at_level("WARNING", logger="tide.world.generate"):
        rows = heldout_records(world, Split(fam, [problem, problem], excluded=set()), None)
    assert len(rows) == 2 and rows[0]["prompt"] == rows[1]["prompt"]
    assert "mmlu: 1 held-out items repeat" in caplog.text
