# Shared helpers: config validation (first thing), paths, the CLI call. Real logic lives in tide/.
from tide.config import section_json, validate_config
from tide.pipelines import PIPELINE_TEACHER, TEACHER_TOKENIZER
from tide.tables import FIGURES, TABLES
from tide.tables.build import study_models
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


def cfg_json(*paths):
    """The config keys a rule's stage reads (dotted paths), as JSON for the CLI: a change of one
    of them re-runs the rule, a change elsewhere does not."""
    return section_json(config, *paths)


# what every distillation run reads (an ablation adds its own entry of distill.ablations.runs)
DISTILL_KEYS = ("distill.train", "students.block_size")


def world_outputs():
    corpus = [results("world", "corpus", f"{s}.jsonl") for s in ("pretrain", "sft", "distill")]
    tasks = [results("world", "tasks", f"{f}.jsonl") for f in FAMILIES]
    return [results("world", "manifest.json"), *corpus, *tasks]


# chat splits no model trains on (UNSEEN_SPLITS): the distillation data, and the rows where the
# teacher-signal stage measures every model. Only the stages that read them list them.
DISTILL_SPLIT, PROBE_SPLIT = "distill_unseen", "signal_probe"
assert {DISTILL_SPLIT, PROBE_SPLIT} == set(UNSEEN_SPLITS)


def unseen_outputs():
    return [results("world", "corpus", f"{s}.jsonl") for s in UNSEEN_SPLITS]


TOKENIZERS = ("student", "teacher_b", "teacher_a")


def tokenizer_outputs():
    return [results("tokenizers", name, "tokenizer.json") for name in TOKENIZERS]



wildcard_constraints:
    kind="a|b",
    model="(students|teachers|distill|ablations)/[A-Za-z0-9_/]+",
    pipeline="cross|shared",
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
