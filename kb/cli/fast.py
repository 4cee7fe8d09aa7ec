"""`kb search` through a warm daemon, without importing typer, rich, pydantic or torch.

Taken only when it is certainly equivalent to the full command: plain arguments (QUERY, -k N,
--json), no config file, the same embedding model as the daemon. Anything else returns None and the
full CLI runs.
"""

from __future__ import annotations

import json
import sys


def _parse(argv: list[str]) -> tuple[str, int, bool] | None:
    query, k, as_json = None, 8, False
    it = iter(argv)
    for a in it:
        if a == "--json":
            as_json = True
        elif a.startswith("-k"):
            v = a[2:] or next(it, "")
            if not v.isdigit() or not 1 <= int(v) <= 200:
                return None
            k = int(v)
        elif a.startswith("-") or query is not None:
            return None  # --help, filters, unknown options: the full CLI handles them
        else:
            query = a
    return (query, k, as_json) if query else None


def try_search(argv: list[str]) -> int | None:
    if not argv or argv[0] != "search":
        return None
    parsed = _parse(argv[1:])
    if parsed is None:
        return None
    import kb

    query, k, as_json = parsed
    try:
        hits = kb.warm_search(query, k)
    except kb.KbError as exc:  # the daemon's: the same rendering as the full CLI, no traceback
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.remedy:
            print(f"  fix: {exc.remedy}", file=sys.stderr)
        return exc.exit_code
    if hits is None:
        return None
    if as_json:
        keys = ("path", "heading", "start_line", "end_line", "score", "relevance", "date")
        keys += ("date_source", "text")
        sys.stdout.write(
            json.dumps([{key: h[key] for key in keys} for h in hits], ensure_ascii=False, indent=2)
            + "\n"
        )
        return 0
    if not hits:
        print("no results (is anything indexed? see `kb status`)")
        return 0
    tty = sys.stdout.isatty()
    bold, dim, cyan, green, off = (
        ("\x1b[1m", "\x1b[2m", "\x1b[1;36m", "\x1b[32m", "\x1b[0m") if tty else ("",) * 5
    )
    for i, h in enumerate(hits, 1):
        print(
            f"{cyan}{i}.{off} {bold}{h['path']}:{h['start_line']}{off}  {dim}{h['heading']}{off}  "
            f"{green}relevance {h['relevance']:.2f}{off}{_dated(h, dim, off)}"
        )
        snippet = " ".join(h["text"].split())
        print(f"   {snippet[:240]}{'…' if len(snippet) > 240 else ''}")
    return 0


def _dated(h: dict, dim: str, off: str) -> str:
    """As `kb.cli.common.dated` renders it."""
    if not h.get("date"):
        return ""
    how = " modified" if h.get("date_source") == "modified" else ""
    return f"  {dim}{h['date']}{how}{off}"


def main() -> None:
    """Console entry point: the fast path when it applies, else the full typer CLI."""
    rc = try_search(sys.argv[1:])
    if rc is not None:
        sys.exit(rc)
    from kb.cli.main import main as full

    full()


if __name__ == "__main__":
    main()
