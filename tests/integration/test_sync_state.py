"""A stateful property test of sync against a model of the folder (hypothesis'
RuleBasedStateMachine).

Random sequences of create / edit / append / rename / move into a subfolder / delete / copy a
duplicate / change encoding / add a bad file, with crashes injected at random write steps, and
random syncs in between — either a full `ingest` or the daemon's incremental path (`sync_locked`
with just the changed paths, as watchdog events deliver them). After every completed sync the index
must equal the model: the same files, chunks only of the current text, no orphan, duplicate or
missing vector, and nothing that was already indexed re-embedded without a content change.

The default run is short (CI); `benchmarks/sync_state.py` runs it long (``KB_STATE_EXAMPLES``,
``KB_STATE_STEPS``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ingest.load import decode
from kb.index.embed import HashEmbedder

EXAMPLES = int(os.environ.get("KB_STATE_EXAMPLES", "12"))
STEPS = int(os.environ.get("KB_STATE_STEPS", "30"))
POINTS = [
    "after_journal",
    "after_vectors",
    "after_manifest",
    "after_delete",
    "delete_after_journal",
    "delete_after_manifest",
    "delete_after_vectors",
]
WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "garden",
    "lamp",
    "tiger",
    "window",
    "violin",
    "harbor",
    "яблоко",
    "река",
    "камень",
    "облако",
    "сад",
]
NAMES = [
    "a.md",
    "b.md",
    "c.txt",
    "d.md",
    "notes.md",
    "sub/e.md",
    "sub/f.md",
    "deep/x/g.md",
    "h.html",
]


class Crash(BaseException):
    """The process dies at a write step (BaseException: nothing in kb may catch it)."""


class RecordingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__(dim=48, max_seq_length=48)
        self.texts: list[str] = []

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return super().embed_batch(texts)


def paragraph(draw_words: list[str]) -> str:
    return " ".join(draw_words).capitalize() + "."


texts = st.lists(
    st.lists(st.sampled_from(WORDS), min_size=3, max_size=12).map(paragraph), min_size=1, max_size=6
).map(lambda ps: "\n\n".join(ps))


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="kb-state-"))
        self.root = self.tmp / "vault"
        self.root.mkdir()
        self.home = self.tmp / "home"
        self.embedder = RecordingEmbedder()
        self.model: dict[
            str, bytes | None
        ] = {}  # rel → bytes (None: a bad file that must be skipped)
        self.changed: set[str] = (
            set()
        )  # paths touched since the last completed sync (the daemon's events)
        self.crashed = (
            False  # the last sync died: the next one may legitimately redo some embedding
        )
        self.syncs = 0
        self.base = self._open()

    def _open(self):
        from kb.knowledge import KnowledgeBase

        return KnowledgeBase(embedder=self.embedder, home=self.home, use_daemon=False)

    def teardown(self) -> None:
        self.base.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---------------------------------------------------------------- folder operations
    def _write(self, rel: str, data: bytes) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.model[rel] = data
        self.changed.add(rel)

    def _good(self) -> list[str]:
        return sorted(r for r, d in self.model.items() if d is not None)

    @rule(name=st.sampled_from(NAMES), body=texts)
    def create(self, name: str, body: str) -> None:
        if name in self.model:
            return
        title = f"# {Path(name).stem.title()}\n\n" if name.endswith(".md") else ""
        if name.endswith(".html"):
            self._write(name, f"<html><body><h1>T</h1><p>{body}</p></body></html>".encode())
        else:
            self._write(name, (title + body + "\n").encode())

    @precondition(lambda self: self._good())
    @rule(data=st.data(), body=texts)
    def edit(self, data: st.DataObject, body: str) -> None:
        rel = data.draw(st.sampled_from(self._good()))
        if rel.endswith(".html"):
            return
        self._write(rel, (f"# {Path(rel).stem}\n\n" + body + "\n").encode())

    @precondition(lambda self: self._good())
    @rule(data=st.data(), body=texts)
    def append(self, data: st.DataObject, body: str) -> None:
        rel = data.draw(st.sampled_from(self._good()))
        if rel.endswith(".html"):
            return
        self._write(rel, self.model[rel] + ("\n" + body + "\n").encode())

    def _files(self) -> list[str]:
        """Regular files only: a moved self-link dangles or loops anew, and a link whose target
        changes gets no event of its own (the daemon's periodic reconcile covers that; this machine
        does not model it)."""
        return sorted(r for r in self.model if not (self.root / r).is_symlink())

    @precondition(lambda self: self._files())
    @rule(data=st.data(), target_name=st.sampled_from([*NAMES, "renamed.md", "sub/renamed.md"]))
    def rename(self, data: st.DataObject, target_name: str) -> None:
        rel = data.draw(st.sampled_from(self._files()))
        if target_name in self.model or Path(rel).suffix != Path(target_name).suffix:
            return
        dst = self.root / target_name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).rename(dst)
        self._moved(rel, target_name)

    def _moved(self, rel: str, target: str) -> None:
        self.model[target] = self.model.pop(rel)
        self.changed |= {rel, target}

    @precondition(lambda self: self._files())
    @rule(data=st.data())
    def move_into_subfolder(self, data: st.DataObject) -> None:
        rel = data.draw(st.sampled_from(self._files()))
        target = f"moved/{Path(rel).name}"
        if target in self.model:
            return
        (self.root / "moved").mkdir(exist_ok=True)
        (self.root / rel).rename(self.root / target)
        self._moved(rel, target)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        rel = data.draw(st.sampled_from(sorted(self.model)))
        (self.root / rel).unlink()
        del self.model[rel]
        self.changed.add(rel)

    @precondition(lambda self: self._good())
    @rule(data=st.data())
    def copy_duplicate(self, data: st.DataObject) -> None:
        rel = data.draw(st.sampled_from(self._good()))
        target = f"copies/{Path(rel).stem}-copy{Path(rel).suffix}"
        if target not in self.model:
            self._write(target, self.model[rel])

    @precondition(lambda self: any(r.endswith((".md", ".txt")) for r in self._good()))
    @rule(data=st.data())
    def change_encoding(self, data: st.DataObject) -> None:
        rel = data.draw(st.sampled_from([r for r in self._good() if r.endswith((".md", ".txt"))]))
        text = (
            "# Заметка\n\n"
            + "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 3
            + "\n"
        )
        self._write(rel, text.encode("cp1251"))

    @rule(kind=st.sampled_from(["binary", "loop"]), n=st.integers(0, 2))
    def add_bad_file(self, kind: str, n: int) -> None:
        rel = f"bad{n}.md"
        if rel in self.model or (self.root / rel).is_symlink():
            return
        if kind == "binary":
            (self.root / rel).write_bytes(b"\x00\x01binary\x00" * 20)
        else:
            os.symlink(rel, self.root / rel)
        self.model[rel] = None
        self.changed.add(rel)

    # ---------------------------------------------------------------- syncs
    @rule(daemon=st.booleans(), crash=st.none() | st.sampled_from(POINTS))
    def sync(self, daemon: bool, crash: str | None) -> None:
        before = {
            c.hash
            for c in self.base.index.manifest.chunks_by_id(
                self.base.index.manifest.all_chunk_ids()
            ).values()
        }
        self.embedder.texts.clear()

        def hook(at: str) -> None:
            if at == crash:
                raise Crash(at)

        self.base.index.crash_hook = hook
        try:
            if (
                daemon and self.syncs
            ):  # the daemon's path: just the changed paths, under its held lock
                self.base.index.lock.acquire(timeout=10)
                try:
                    self.base.index.sync_locked(
                        [self.root.resolve()], only={self.root.resolve(): set(self.changed)}
                    )
                finally:
                    self.base.index.lock.release()
            else:
                self.base.ingest([self.root])
        except Crash:
            TOTALS["crashes"] += 1
            self.base.close()  # the process died; the next one starts from disk
            self.base = self._open()
            self.crashed = True
            return
        finally:
            self.base.index.crash_hook = None
        embedded = {hashlib.sha256(t.encode()).hexdigest()[:32] for t in self.embedder.texts}
        if not self.crashed:
            assert not (embedded & before), "already indexed text was embedded again"
        self.crashed = False
        self.changed.clear()
        self.syncs += 1
        TOTALS["syncs"] += 1
        self.check_index()

    def check_index(self) -> None:
        root = str(self.root.resolve())
        files = self.base.index.manifest.files(root)
        assert {p for (_, p) in files} == set(self.model), "index files differ from the folder"
        for (_, rel), f in files.items():
            data = self.model[rel]
            if data is None:
                assert f.status == "skipped" and f.reason, rel
                continue
            assert f.status == "indexed" and f.sha256 == hashlib.sha256(data).hexdigest(), rel
            words = set(
                " ".join(c.text for c in self.base.index.manifest.chunks_of(root, rel)).split()
            )
            if rel.endswith(".html"):
                continue
            current = decode(data)[0]  # kb's decoding (tested on its own in test_load.py)
            stale = (
                {w.strip(".,#") for w in words} - {w.strip(".,#") for w in current.split()} - {""}
            )
            assert not stale, f"{rel}: chunk words not in the current text: {sorted(stale)[:5]}"
        rep = self.base.index.verify_locked() if self.base.index.lock.held else self.base.verify()
        assert not (rep.missing or rep.orphans or rep.duplicates), rep.as_dict()
        assert not rep.stale, rep.stale

    @invariant()
    def lock_not_leaked(self) -> None:
        assert not self.base.index.lock.held
        TOTALS["steps"] += 1


TOTALS = {"steps": 0, "syncs": 0, "crashes": 0}  # read by benchmarks/sync_state.py


SyncMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


class TestSyncStateMachine(SyncMachine.TestCase):
    pass
