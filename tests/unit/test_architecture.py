"""The package map in docs/architecture.md, enforced: every import in kb/ and ingest/ flows the
documented way, type-only imports included; no module imports itself back through others; the
command line goes through the public layer only; and no object reads or writes another object's
private attributes."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = {"kb.settings", "kb.errors", "kb.paths", "kb.retry"}
CLIENT = {"kb.daemon.client", "kb.daemon.quick"}  # stdlib-only: the daemon's wire protocol
LOW = {"base", "ingest", "index", "focus", "answers", "eval", "serve", "client"}

# layer → the layers it may import (its own included). Read bottom-up: the index over ingest,
# focus over the index, answers over focus, measurement over answers; `kb.knowledge` (the one
# door) over all of them; the daemon (a skin that serves requests) over the door; the `kb` package
# (the public functions) over the daemon; the CLI over the public layer only.
ALLOWED = {
    "base": {"base"},
    "ingest": {"base", "ingest"},
    "index": {"base", "ingest", "index"},
    "focus": {"base", "ingest", "index", "focus"},
    "answers": {"base", "ingest", "index", "focus", "answers"},
    "eval": {"base", "ingest", "index", "focus", "answers", "eval"},
    "serve": {"base", "serve"},
    "client": {"base", "client"},
    "knowledge": LOW | {"knowledge"},
    "daemon": LOW | {"knowledge", "daemon"},
    "api": LOW | {"knowledge", "daemon", "api"},
    "cli": {"base", "knowledge", "api", "cli"},  # the public layer, and itself
}


def layer(module: str) -> str | None:
    if module in BASE:
        return "base"
    if module in CLIENT:
        return "client"
    if module == "ingest" or module.startswith("ingest."):
        return "ingest"
    for pkg in ("index", "focus", "answers", "eval", "daemon", "serve", "cli"):
        if module == f"kb.{pkg}" or module.startswith(f"kb.{pkg}."):
            return pkg
    if module == "kb.knowledge":
        return "knowledge"
    if module == "kb":
        return "api"
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
    assert layer("kb.knowledge") not in ALLOWED["index"]
    assert layer("kb.focus.budget") not in ALLOWED["index"]


def test_the_command_line_goes_through_the_public_layer(tmp_path: Path) -> None:
    """The CLI parses, calls `kb`/`kb.knowledge` and renders: a command reaching into the focus
    layer or the daemon is caught (and the checker sees it)."""
    bad = tmp_path / "ask_cmd.py"
    bad.write_text(
        "def f():\n    from kb.focus.prompt import messages\n    import kb.daemon.worker\n"
    )
    got = imports("kb.cli.ask_cmd", bad)
    assert {"kb.focus.prompt", "kb.daemon.worker"} <= got
    assert not {layer(m) for m in got} <= ALLOWED["cli"]
    wrong = {
        f"{name} imports {target}"
        for name, path in modules_cache().items()
        if layer(name) == "cli"
        for target in imports(name, path)
        if layer(target) not in ALLOWED["cli"]
    }
    assert not wrong, wrong


def own_privates() -> set[str]:
    """Private attribute names kb's own classes set on themselves (``self._name = ...``)."""
    names: set[str] = set()
    for path in modules_cache().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else ([node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else [])
            )
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                    and t.attr.startswith("_")
                    and not t.attr.startswith("__")
                ):
                    names.add(t.attr)
    return names


def foreign_private_access(path: Path, privates: set[str]) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls`` and ``_name`` is one of kb's own privates."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in privates
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_no_object_touches_another_objects_privates(tmp_path: Path) -> None:
    """Composition, not reaching in: a part is used through its public methods."""
    privates = own_privates()
    bad = tmp_path / "worker.py"
    bad.write_text("def f(reader, writer):\n    reader._store = writer.store()\n")
    assert foreign_private_access(bad, privates | {"_store"}) and "_store" in privates
    wrong = [hit for p in modules_cache().values() for hit in foreign_private_access(p, privates)]
    assert not wrong, wrong
