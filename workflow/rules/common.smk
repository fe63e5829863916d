# Shared helpers: config validation (first thing), paths, the CLI call. Real logic lives in tide/.
from tide.cli import stage_json
from tide.config import validate_config
from tide.launch import launcher
from tide.pipelines import PIPELINES, TEACHER_TOKENIZER, TEACHERS, pipeline_train
from tide.tables import FIGURES, TABLES
from tide.tables.build import study_models
from tide.tables.efficiency import profile_files
from tide.tables.signal import signal_files, signal_systems
from tide.world import FAMILIES
from tide.world.generate import UNSEEN_SPLITS

validate_config(config)

RESULTS = config["results"]
LOGS = config["logs"]
WORK = config["work"]


def results(*parts):
    """A path under the results root."""
    return "/".join([RESULTS, *parts])


def logs(*parts):
    """A log path under the logs root (mirrors results/)."""
    return "/".join([LOGS, *parts])


def work(*parts):
    """Resumable state (trainer checkpoints) under the work root, outside declared outputs."""
    return "/".join([WORK, *parts])


# A rule passes its stage `--config-json` as stage_json(config, "<stage>", <argument>=<value>...)
# gives it: the config keys the stage declares (tide/cli.py), so that a change of one of them
# re-runs the rule and a change elsewhere does not.


def launch(train):
    """A params function giving a training rule's launcher: `python`, or `accelerate launch` with
    one process per GPU of the job (its `gpu` resource: profiles/slurm/config.yaml; none on a plain
    machine), spread by `parallelism` (ddp | fsdp, config/accelerate/), in the mixed precision of
    the run's trainer settings, ``train(wildcards)``."""

    def command(wildcards, resources):
        return launcher(resources.get("gpu", 0), config["parallelism"],
                        bf16=train(wildcards)["bf16"])

    return command


# The tiny world is made (and read) only where the config asks for it: at paper scale the rows come
# from the paper's datasets (rule make_data), tokenizers and checkpoints are the released ones, and
# no job of the DAG generates or reads a world.
WORLD = config["data"]["source"] == "world"


def world_outputs():
    if not WORLD:
        return []
    corpus = [results("world", "corpus", f"{s}.jsonl") for s in ("pretrain", "sft", "distill")]
    tasks = [results("world", "tasks", f"{f}.jsonl") for f in FAMILIES]
    return [results("world", "manifest.json"), *corpus, *tasks]


def pretrained(group, key):
    """The released checkpoint a section names (paper scale), or None: trained here."""
    return config[group][key]["pretrained"]


def one_of(values):
    """A wildcard pattern matching the given values only (none at all when the list is empty)."""
    return "|".join(values) if values else "(?!)"


# chat splits no model trains on (UNSEEN_SPLITS): the distillation data, and the rows where the
# teacher-signal stage measures every model. Only the stages that read them list them.
DISTILL_SPLIT, PROBE_SPLIT = "distill_unseen", "signal_probe"
assert {DISTILL_SPLIT, PROBE_SPLIT} == set(UNSEEN_SPLITS)


def unseen_outputs():
    return [results("world", "corpus", f"{s}.jsonl") for s in UNSEEN_SPLITS] if WORLD else []


# the paper mixture's files (rule make_data) standing in for the world's two unseen splits
MIXTURE_FILES = {DISTILL_SPLIT: "distill.jsonl", PROBE_SPLIT: "probe.jsonl"}


def chat_rows(split):
    """The chat rows of ``split`` (DISTILL_SPLIT or PROBE_SPLIT): a world split or a mixture file."""
    if not WORLD:
        return results("data", MIXTURE_FILES[split])
    return results("world", "corpus", f"{split}.jsonl")


TOKENIZERS = ("student", "teacher_b", "teacher_a")


def tokenizer_outputs():
    return [results("tokenizers", name, "tokenizer.json") for name in TOKENIZERS]



wildcard_constraints:
    kind=one_of(TEACHERS),
    model="(students|teachers|distill|ablations)/[A-Za-z0-9_/]+",
    pipeline=one_of(PIPELINES),
    seed="[0-9]+",
    split="|".join(UNSEEN_SPLITS),
    task="[A-Za-z0-9_]+",


def model_outputs(directory):
    """The files a finished `save_pretrained` directory is known by (weights + config + record)."""
    return [f"{directory}/config.json", f"{directory}/model.safetensors",
            f"{directory}/provenance.json"]


def teacher_outputs(kind):
    return model_outputs(results("teachers", kind))


def student_outputs():
    """The two baseline rows: AR and BD3LM."""
    return [*model_outputs(results("students", "ar")), *model_outputs(results("students", "bd3lm"))]


BASELINE_MODELS = ["students/ar", "students/bd3lm", "teachers/a", "teachers/b"]


def eval_outputs(models):
    """One results JSON per (model, task)."""
    return [results("eval", m, t, f"{t}.json") for m in models for t in config["eval"]["tasks"]]


# the distilled students and ablations of the study, as the tables read them
_SYSTEMS, _ABLATION_MODELS = study_models(config)
DISTILL_MODELS = [m for system, models in _SYSTEMS.items() if system.distilled for m in models]
ABLATIONS = config["distill"]["ablations"]["runs"]
ABLATION_MODELS = [m for models in _ABLATION_MODELS.values() for m in models]


def signal_outputs():
    """One teacher-signal result per (pipeline, model measured against its teacher)."""
    layout = signal_systems(_SYSTEMS, _ABLATION_MODELS, ABLATIONS)
    return [results("signal", f) for f in signal_files(layout)]


def table_outputs():
    """The paper's tables, each as CSV and Markdown (tables.smk)."""
    return [results("tables", f"{name}.{ext}") for name in TABLES for ext in ("csv", "md")]


def figure_outputs():
    return [results("figures", f"{name}.png") for name in FIGURES]


def parent_dir(path, up=1):
    """The directory ``up`` levels above a declared input or output file: a rule's directory
    arguments are derived from its files, never stated beside them."""
    for _ in range(up):
        path = os.path.dirname(path)
    return path


def profile_outputs():
    """One profile per model of the efficiency table: the BD3LM student, each pipeline's teacher,
    and each real shape with random weights (profile.random_weights_shapes)."""
    return [results("profile", f) for f in profile_files(config)]


wildcard_constraints:
    shape=one_of([s["name"] for s in config["profile"]["random_weights_shapes"]]),
