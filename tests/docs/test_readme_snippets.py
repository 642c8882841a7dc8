"""Every ```python block of README.md runs as printed, with tiny local checkpoints for the models.

How a block is run:

1. Its text is taken from README.md as is; each hub model id in :data:`MODEL_SUBSTITUTES` that it
   names in quotes is replaced by the path of a tiny random-weight checkpoint of the same kind, built
   locally (nothing is downloaded). That table is the only change made to a block's text.
2. Prism's default generation budget is lowered to :data:`SNIPPET_MAX_NEW_TOKENS` while blocks run
   (random weights never stop early: 1024 tokens would only make the test slow); engines built by a
   block are dropped after it, so no other test sees that budget.
3. It runs in a fresh namespace (a block must define or import everything it uses) with
   ``HF_HUB_OFFLINE=1``, so a model id missing from the table fails at once instead of reaching
   for the Hub.
4. A block right after ``<!-- snippet: needs-hub (reason) -->`` is only compiled, and reported as
   skipped with its reason: it needs Hub files that have no tiny stand-in. That list is kept short
   (:data:`MAX_NEEDS_HUB`).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import io
import re
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"

#: Which tiny local checkpoint stands in for each hub model id the README names.
MODEL_SUBSTITUTES: dict[str, str] = {
    "infgrad/Prism-Qwen3.5-Reranker-0.8B": "tiny-qwen3_5",
    "Qwen/Qwen3-Reranker-0.6B": "tiny-qwen3",
    "BAAI/bge-reranker-v2-m3": "tiny-cross-encoder",
    "cross-encoder/ms-marco-MiniLM-L6-v2": "tiny-cross-encoder",
}

#: Prism's generation budget while the blocks run (see the module docstring).
SNIPPET_MAX_NEW_TOKENS = 32

#: The marker for a block that cannot run offline, and how many such blocks the README may have.
NEEDS_HUB = re.compile(r"<!--\s*snippet:\s*needs-hub\s*\((?P<reason>[^)]*)\)\s*-->")
MAX_NEEDS_HUB = 3


class Snippet(NamedTuple):
    line: int  # README line of the opening fence
    code: str
    needs_hub: str | None  # the marker's reason, or None


def readme_snippets(text: str) -> list[Snippet]:
    """The ```python blocks of ``text``, with the needs-hub marker on the line before each, if any."""
    lines = text.splitlines()
    snippets: list[Snippet] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            previous = lines[start - 1].strip() if start > 0 else ""
            marker = NEEDS_HUB.fullmatch(previous)
            snippets.append(Snippet(start + 1, "\n".join(body) + "\n", marker["reason"] if marker else None))
        i += 1
    return snippets


SNIPPETS = readme_snippets(README.read_text(encoding="utf-8"))


def test_readme_has_snippets_and_few_need_the_hub() -> None:
    assert len(SNIPPETS) >= 8
    needs_hub = [s.line for s in SNIPPETS if s.needs_hub]
    assert len(needs_hub) <= MAX_NEEDS_HUB, f"too many README snippets marked needs-hub: lines {needs_hub}"


def test_the_marker_is_read() -> None:
    text = "x\n<!-- snippet: needs-hub (heads) -->\n```python\nprint(1)\n```\n```python\nprint(2)\n```\n"
    assert readme_snippets(text) == [Snippet(3, "print(1)\n", "heads"), Snippet(6, "print(2)\n", None)]


#: The extra each framework's snippets are installed with (README "Install").
FRAMEWORK_EXTRAS = {"langchain": "langchain", "llama_index": "llama-index", "haystack": "haystack"}
OUR_MODULES = {"prism_core", "prism_integrations", "haystack_integrations"}


def _imported_modules(code: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return modules


def _requirement_names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].strip().lower().replace("_", "-") for r in requirements
    }


def test_each_framework_extra_installs_what_its_snippets_import() -> None:
    """A snippet importing a framework runs after ``pip install -e ".[<that framework>]"``: every
    distribution it imports from is a core dependency or in that extra (read from pyproject.toml)."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((README.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = _requirement_names(project["dependencies"])
    by_module = importlib.metadata.packages_distributions()
    checked = 0
    for snippet in SNIPPETS:
        modules = _imported_modules(snippet.code)
        frameworks = [
            extra for prefix, extra in FRAMEWORK_EXTRAS.items() if any(m.startswith(prefix) for m in modules)
        ]
        if not frameworks or snippet.needs_hub:
            continue
        allowed = core | _requirement_names(project["optional-dependencies"][frameworks[0]])
        for module in sorted(modules - OUR_MODULES - set(sys.stdlib_module_names)):
            dists = {d.lower().replace("_", "-") for d in by_module.get(module, [])}
            assert dists & allowed, (
                f"README.md:{snippet.line} imports {module} ({sorted(dists)}), which the "
                f"[{frameworks[0]}] extra does not install"
            )
        checked += 1
    assert checked >= 3  # the LangChain, LlamaIndex and Haystack snippets


@pytest.fixture(scope="module")
def tiny_models(
    tiny_qwen35_path: str, tiny_qwen3_path: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Kind name -> local path of the tiny checkpoint of that kind."""
    from prism_core.testing.tiny_cross_encoder import build_tiny_cross_encoder

    cross_encoder = build_tiny_cross_encoder(tmp_path_factory.mktemp("readme-cross-encoder"))
    return {
        "tiny-qwen3_5": tiny_qwen35_path,
        "tiny-qwen3": tiny_qwen3_path,
        "tiny-cross-encoder": str(cross_encoder),
    }


def substitute(code: str, tiny: dict[str, str]) -> str:
    """``code`` with every quoted model id of :data:`MODEL_SUBSTITUTES` replaced by its tiny path."""
    for model_id, kind in MODEL_SUBSTITUTES.items():
        for quote in ('"', "'"):
            code = code.replace(f"{quote}{model_id}{quote}", repr(tiny[kind]))
    return code


def test_substitution_replaces_quoted_ids_only() -> None:
    code = 'm = "infgrad/Prism-Qwen3.5-Reranker-0.8B"  # infgrad/Prism-Qwen3.5-Reranker-0.8B\n'
    assert substitute(code, {"tiny-qwen3_5": "/t", "tiny-qwen3": "", "tiny-cross-encoder": ""}) == (
        "m = '/t'  # infgrad/Prism-Qwen3.5-Reranker-0.8B\n"
    )


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"README.md:{s.line}" for s in SNIPPETS])
def test_readme_snippet_runs(
    snippet: Snippet, tiny_models: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code = compile(snippet.code, f"README.md:{snippet.line}", "exec")  # every block at least compiles
    if snippet.needs_hub:
        pytest.skip(f"README.md:{snippet.line} needs the Hub: {snippet.needs_hub}")
    from prism_core.backends.causal import CausalLMReranker
    from prism_core.registry import clear_engines

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr(CausalLMReranker, "default_max_new_tokens", SNIPPET_MAX_NEW_TOKENS)
    code = compile(substitute(snippet.code, tiny_models), f"README.md:{snippet.line}", "exec")
    clear_engines()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, {"__name__": f"readme_line_{snippet.line}"})
    finally:
        clear_engines()  # engines built with the lowered budget are not handed to other tests
