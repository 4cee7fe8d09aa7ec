"""Domain errors. Every message says what went wrong *and* how to fix it.

The library raises these; only the CLI turns them into exit codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class KbError(Exception):
    """Base of every expected kb failure. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, remedy: str | None = None) -> None:
        self.message = message
        self.remedy = remedy
        super().__init__(f"{message} — {remedy}" if remedy else message)


def describe(exc: BaseException) -> str:
    """An exception as a file's recorded reason: its type and the start of its message."""
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def one_line(text: object, limit: int = 300) -> str:
    """An error text in one line, cut at a word boundary (never mid-URL or mid-path)."""
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", 0, limit)
    return flat[: cut if cut > limit // 2 else limit] + " …"


class ConfigError(KbError):
    """Settings could not be read or are invalid."""

    exit_code = 2


class UsageError(ConfigError):
    """The command was called with an argument it cannot use (an empty query, ...)."""


class PathNotFoundError(KbError):
    """A path given to ingest/forget does not exist."""

    exit_code = 3


class StoreError(KbError):
    """The index (Chroma + manifest) cannot be opened or is inconsistent."""

    exit_code = 4


class StoreDamagedError(StoreError):
    """Chroma's embedded vector segment cannot be read: a kill or power loss in the middle of
    Chroma's own write can leave it so. A writer (`kb ingest`, `kb watch`) moves it aside and
    re-embeds from the notes."""


class ModelMismatchError(StoreError):
    """The index was built with another embedding model than the configured one."""


class EmbedderError(KbError):
    """The embedding model cannot be loaded."""

    exit_code = 5


class DimensionMismatchError(EmbedderError):
    """The embedder's vectors have another dimension than the index's: the model changed (a server
    swapped its model behind the same URL, a local folder was replaced)."""


class DependencyMissingError(KbError):
    """An optional dependency is not installed."""

    exit_code = 6


class LockedError(KbError):
    """Another process holds the writer lock."""

    exit_code = 7


class VerifyError(KbError):
    """``kb status --verify`` found missing, orphan or duplicate chunks."""

    exit_code = 8


class LLMError(KbError):
    """The LLM server failed in an expected way."""

    exit_code = 9


class LLMUnavailableError(LLMError):
    """No server answers at the configured URL."""


class ModelNotServedError(LLMError):
    """The server runs, but not the configured model."""


class PromptTooLongError(LLMError):
    """The prompt exceeds the server's context even after shrinking the budget."""


class LLMTimeoutError(LLMError):
    """The server took too long."""


class AnswerCutError(LLMError):
    """An answer stopped before the server finished it: the stream ended without a finish reason or
    broke off in a malformed chunk, ran past its deadline, or outgrew what max_tokens allows. What
    came is kept, marked as cut (`Answer.cut`)."""


class DiskFullError(StoreError):
    """The disk holding KB_HOME (or the vector store) is full or read-only."""


_FULL = ("no space left", "disk is full", "database or disk is full", "disk quota exceeded")
_READONLY = ("read-only file system", "readonly database", "attempt to write a readonly database")


def environment_error(exc: BaseException, where: str = "KB_HOME") -> KbError | None:
    """The `KbError` for a failure that is the machine's, not a file's (a full or read-only disk),
    else None. Such errors must stop a sync with a remedy instead of being blamed on the file being
    written."""
    import errno

    if isinstance(exc, KbError):
        return exc
    text = f"{type(exc).__name__}: {exc}".lower()
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT) or any(m in text for m in _FULL):
        return DiskFullError(
            f"the disk holding {where} is full ({str(exc)[:120]})",
            "free space on that disk; a running `kb watch` resumes by itself, "
            "otherwise run the command again",
        )
    if code == errno.EROFS or any(m in text for m in _READONLY):
        return DiskFullError(
            f"{where} is read-only ({str(exc)[:120]})",
            f"make {where} writable (or point KB_HOME at a writable folder)",
        )
    return None


def is_machine_fault(exc: BaseException) -> bool:
    """True for failures that are not one file's fault: a `KbError`, a full or read-only disk."""
    return environment_error(exc) is not None


@contextmanager
def machine_errors() -> Iterator[None]:
    """Re-raise a full or read-only disk (however the library below reports it) as
    `DiskFullError`."""
    try:
        yield
    except Exception as exc:
        env = environment_error(exc)
        if env is not None and env is not exc:
            raise env from exc
        raise
