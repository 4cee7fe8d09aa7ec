"""Task modes and the `auto` router.

Each mode is a settings section (see `ModeSettings` in `kb.settings`): context budget, passage limit,
cutoff, pruning, order, thinking switch, output limit and sampling. `auto` picks one from the question —
code markers and programming vocabulary → `code`; analysis / comparison / planning / multi-part → `think`;
otherwise `dialog` — in Russian and English, and records why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODES = ("code", "dialog", "think")

_CODE_MARKERS = [
    (re.compile(r"`[^`]+`|```"), "backticks"),
    (re.compile(r"\b\w+\(\)|\w+\.\w+\(|::|->|=>|\{\s*\}|\[\]|&&|\|\||!=|==|\+=|;\s*$"), "code syntax"),
    (re.compile(r"\b[\w/.-]+\.(py|js|ts|tsx|go|rs|java|cpp|c|h|sh|sql|yaml|yml|toml|json|md|css|html)\b"),
     "file name"),
    (re.compile(r"(?:^|\s)--?[a-z][\w-]+"), "command-line flag"),
    (re.compile(r"\b(?:Traceback|TypeError|ValueError|KeyError|Exception|segfault|errno|stack ?trace)\b", re.I),
     "error text"),
]
_CODE_WORDS = re.compile(
    r"\b(?:python|javascript|typescript|bash|shell|script|regex|regexp|sql|query|function|method|class|variable|"
    r"compile|compiler|debug|bug|error|exception|import|install|pip|npm|git|docker|api|endpoint|json|yaml|"
    r"config|command|cli|syntax|snippet|code|implement|refactor|unit test|kubectl|systemctl|nginx|cron|"
    r"функци\w*|метод\w*|класс\w*|переменн\w*|скрипт\w*|команд\w*|ошибк\w*|исключени\w*|код\w*|"
    r"компил\w*|отлад\w*|баг\w*|регуляр\w*|запрос\w*|установ\w*|конфиг\w*|синтаксис\w*|программ\w*)\b",
    re.I,
)
_THINK_WORDS = re.compile(
    r"\b(?:compare|comparison|versus|vs\.?|pros and cons|trade-?offs?|why|analy[sz]e|analysis|evaluate|"
    r"assess|plan|planning|strategy|should i|which is better|what would you recommend|summari[sz]e|overview|"
    r"explain how|"
    r"reason|implications?|differences? between|what if|prioriti[sz]e|"
    r"сравни\w*|сравнени\w*|почему|зачем|проанализ\w*|анализ\w*|оцени\w*|план\w*|стратеги\w*|стоит ли|"
    r"плюсы и минусы|что лучше|чем отлича\w*|разниц\w*|обобщи\w*|резюмир\w*|подытож\w*|объясни\w*|"
    r"порекоменд\w*|как быть|что если)\b",
    re.I,
)


@dataclass
class ModeChoice:
    mode: str
    reason: str
    forced: bool = False


def choose_mode(question: str, forced: str | None = None) -> ModeChoice:
    """Pick the task mode for a question (or honour a forced one) and say why."""
    if forced and forced != "auto":
        if forced not in MODES:
            raise ValueError(f"unknown mode {forced!r}; choose one of auto, {', '.join(MODES)}")
        return ModeChoice(forced, f"forced with --mode {forced}", forced=True)
    q = question.strip()
    code_hits = [name for rx, name in _CODE_MARKERS if rx.search(q)]
    words = [m.group(0).lower() for m in _CODE_WORDS.finditer(q)]
    if code_hits or (len(words) >= 1 and (len(words) >= 2 or len(q.split()) <= 12)):
        why = ", ".join(code_hits + [f"'{w}'" for w in dict.fromkeys(words)][:4])
        return ModeChoice("code", f"code markers / programming vocabulary: {why}")
    think = [m.group(0).lower() for m in _THINK_WORDS.finditer(q)]
    parts = len(re.findall(r"\?", q))
    if think:
        return ModeChoice("think", "analysis/comparison/planning words: " + ", ".join(dict.fromkeys(think)))
    if parts >= 2:
        return ModeChoice("think", f"multi-part question ({parts} questions)")
    if len(q.split()) > 45:
        return ModeChoice("think", f"long question ({len(q.split())} words)")
    return ModeChoice("dialog", "no code markers and no analysis cues: a direct question")
