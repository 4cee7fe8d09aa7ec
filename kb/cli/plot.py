"""`kb eval --answers --plot FILE.png`: answer F1 against prompt tokens, one point per strategy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kb.errors import DependencyMissingError, KbError


def require_matplotlib() -> None:
    """Fail before an hour of answering, not after it."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise DependencyMissingError("--plot needs matplotlib", "pip install 'kb-notes[plot]'")


def plot_answers(result: dict[str, Any], path: Path) -> Path:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    points = [(name, s["prompt_tokens_mean"] or 0, s["f1_overall"] or 0.0) for name, s in
              result["strategies"].items() if s["questions"]]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, x, y in points:
        focused = name.removesuffix("+check") not in ("naive", "max")
        ax.scatter([x], [y], s=80, color="tab:green" if focused else "tab:red", zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=10)
    xs = [p[1] for p in points]
    if xs and max(xs) > 20 * max(1, min(xs)):  # focused and "everything in" differ by orders of magnitude
        ax.set_xscale("log")
    ax.set_xlabel("prompt tokens per question (mean: server usage, else kb's count)")
    ax.margins(x=0.15)
    ax.set_ylabel("answer F1 (unanswerable: 1 when it abstains)")
    ax.set_ylim(0, max(0.05, min(1.0, max((p[2] for p in points), default=0) * 1.25)))
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{Path(result['corpus']).name}: {result['questions']} questions · {result['model']}", fontsize=10)
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise KbError(f"cannot write {path}: {exc.strerror}", "pass --plot a path in a writable folder") from None
    finally:
        plt.close(fig)
    return path
