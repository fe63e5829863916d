"""What importing the package does: `import tide.models` registers the three model types with
transformers' Auto classes, `import tide.eval` the lm-eval model classes; no module of tide imports
one that imports it back (function-level imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tide

PACKAGE = Path(tide.__file__).parent


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_import_tide_models_registers_the_auto_classes():
    out = _run("import tide.models\nfrom transformers import AutoConfig\n"
               "print([type(AutoConfig.for_model(t)).__name__ for t in "
               "('a2d-qwen3', 'llada2_moe', 'wedlm')])")
    assert out.strip() == "['A2DQwen3Config', 'LLaDA2MoeConfig', 'WeDLMConfig']"


def test_import_tide_eval_registers_the_lm_eval_models():
    out = _run("import tide.eval\nfrom lm_eval.api.registry import get_model\n"
               "print([get_model(n).__name__ for n in "
               "('tide_bd3lm', 'tide_llada2', 'tide_wedlm', 'tide_ar')])")
    assert out.strip() == "['BD3LMEvalModel', 'LLaDA2EvalModel', 'WeDLMEvalModel', 'AREvalModel']"


def test_the_command_line_starts_without_torch():
    """Building the parser (every stage's arguments, `--help`) and the rules' `stage_json` import no
    torch: each stage imports what it needs when it runs."""
    out = _run("import sys\nfrom tide.cli import build_parser, stage_json\nbuild_parser()\n"
               "stage_json({'students': {'block_size': 4, 'sft': {}}}, 'prepare', role='bd3lm')\n"
               "print('torch' in sys.modules)")
    assert out.strip() == "False"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """tide modules imported anywhere in ``path`` (``from tide.x import y`` counts tide.x.y when
    that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tide")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tide"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_no_import_circle():
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        # a package's __init__ importing its own submodules is not a circle
        graph[name] = {m for m in _imports(path) if m in files and m != name
                       and not (is_package and m.startswith(name + "."))}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
