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


def crowded(points: list[tuple[str, float, float]], log: bool) -> set[str]:
    """The strategies whose label (above right of the point) would sit on another point: those get
    theirs below left. Distances are shares of the axes' spans, on the x scale the plot uses."""
    import math

    def fx(x: float) -> float:
        return math.log10(max(x, 1.0)) if log else x

    xs, ys = [fx(p[1]) for p in points], [p[2] for p in points]
    xspan, yspan = (max(xs) - min(xs)) or 1.0, max(ys) or 1.0
    return {
        a
        for a, xa, ya in points
        for b, xb, yb in points
        if a != b and 0 <= (fx(xb) - fx(xa)) / xspan < 0.12 and abs(yb - ya) / yspan < 0.1
    }


def plot_answers(result: dict[str, Any], path: Path) -> Path:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    points = [
        (name, s["prompt_tokens_mean"] or 0, s["f1_overall"] or 0.0)
        for name, s in result["strategies"].items()
        if s["questions"]
    ]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    xs = [p[1] for p in points]
    log = bool(xs) and max(xs) > 20 * max(
        1, min(xs)
    )  # focused and "everything in" differ by orders of magnitude
    below = crowded(points, log) if points else set()
    for name, x, y in points:
        focused = name.removesuffix("+check") not in ("naive", "max")
        ax.scatter([x], [y], s=80, color="tab:green" if focused else "tab:red", zorder=3)
        ax.annotate(
            name,
            (x, y),
            textcoords="offset points",
            fontsize=10,
            **({"xytext": (-6, -14), "ha": "right"} if name in below else {"xytext": (6, 6)}),
        )
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("prompt tokens per question (mean: server usage, else kb's count)")
    ax.margins(x=0.15)
    ax.set_ylabel("answer F1 (unanswerable: 1 when it abstains)")
    ax.set_ylim(0, max(0.05, min(1.0, max((p[2] for p in points), default=0) * 1.25)))
    ax.grid(True, alpha=0.3)
    ax.set_title(
        f"{Path(result['corpus']).name}: {result['questions']} questions · {result['model']}",
        fontsize=10,
    )
    fig.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise KbError(
            f"cannot write {path}: {exc.strerror}", "pass --plot a path in a writable folder"
        ) from None
    finally:
        plt.close(fig)
    return path
