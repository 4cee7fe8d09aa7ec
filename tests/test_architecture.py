"""The package map in docs/architecture.md, enforced: every import in kb/ and ingest/ flows the
documented way (cli → kb.knowledge → answers → focus → index → ingest → base; daemon beside answers,
over focus and index), type-only imports included, and no module imports itself back through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = {"kb.settings", "kb.errors", "kb.paths"}

# layer → the layers it may import (its own included)
ALLOWED = {
    "base": {"base"},
    "ingest": {"base", "ingest"},
    "index": {"base", "ingest", "index"},
    "focus": {"base", "ingest", "index", "focus"},
    "answers": {"base", "ingest", "index", "focus", "answers"},
    "daemon": {"base", "ingest", "index", "focus", "daemon"},
    "serve": {"base", "serve"},
    "top": {"base", "ingest", "index", "focus", "answers", "daemon", "top"},
    "cli": {"base", "ingest", "index", "focus", "answers", "daemon", "serve", "top", "cli"},
}


def layer(module: str) -> str | None:
    if module in BASE:
        return "base"
    if module == "ingest" or module.startswith("ingest."):
        return "ingest"
    for pkg in ("index", "focus", "answers", "daemon", "serve", "cli"):
        if module == f"kb.{pkg}" or module.startswith(f"kb.{pkg}."):
            return pkg
    if module in ("kb", "kb.knowledge"):
        return "top"
    return None  # not ours (stdlib, third party)


def modules() -> dict[str, Path]:
    out = {}
    for pkg in ("kb", "ingest"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports(name: str, path: Path) -> set[str]:
    """Every kb/ingest module ``name`` imports, anywhere in the file (functions, TYPE_CHECKING
    blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    known = modules_cache()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
            found.update(subs or {base})  # `from kb import paths` depends on kb.paths, not on kb
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", None) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return {m for m in found if layer(m) is not None and m != name}


_CACHE: dict[str, Path] = {}


def modules_cache() -> dict[str, Path]:
    if not _CACHE:
        _CACHE.update(modules())
    return _CACHE


def test_every_module_has_a_layer() -> None:
    missing = [m for m in modules_cache() if layer(m) is None]
    assert not missing, f"modules outside the documented map: {missing}"


def test_imports_flow_the_documented_way() -> None:
    wrong = []
    for name, path in modules_cache().items():
        mine = layer(name)
        for target in sorted(imports(name, path)):
            if layer(target) not in ALLOWED[mine]:
                wrong.append(f"{name} ({mine}) imports {target} ({layer(target)})")
    assert not wrong, "imports against the documented direction:\n" + "\n".join(wrong)


def test_no_import_circles() -> None:
    mods = modules_cache()
    graph = {n: {t for t in imports(n, p) if t in mods} for n, p in mods.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for t in sorted(graph.get(n, ())):
            if state.get(t) == 1:
                cycles.append([*stack[stack.index(t) :], t])
            elif t not in state:
                visit(t, [*stack, t])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not cycles, "import circles: " + "; ".join(" → ".join(c) for c in cycles[:5])


def test_the_checker_catches_a_wrong_way_import(tmp_path: Path) -> None:
    """A check that cannot fail is no check: an index module importing the knowledge base is
    caught."""
    bad = tmp_path / "core.py"
    bad.write_text("from kb.knowledge import KnowledgeBase\nfrom kb.focus import budget\n")
    got = imports("kb.index.core", bad)
    assert {"kb.knowledge", "kb.focus.budget"} <= got
    assert (
        layer("kb.knowledge") not in ALLOWED["index"]
        and layer("kb.focus.budget") not in ALLOWED["index"]
    )
