"""The manifest: SQLite in KB_HOME, the source of truth for what is indexed.

Tables: ``roots``; ``files`` (one row per file seen: size, mtime_ns, sha256, status, reason, model,
chunker, metadata); ``chunks`` (id, file, position, hash, heading, lines, text); ``journal`` (files
whose write is in flight: a non-empty journal on open means the last writer died mid-write and the
store must be repaired); ``meta`` (model id, schema version).
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.span import MODIFIED, Span
from ingest.stem import index_text, lexical_fields

SCHEMA_VERSION = "1"
LEXICAL_FIELDS = (
    "path+heading+text/1"  # what the FTS5 rows hold; a change rebuilds them (no re-embedding)
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots(root TEXT PRIMARY KEY, added_at REAL NOT NULL, last_sync REAL);
CREATE TABLE IF NOT EXISTS files(
    root TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, model_id TEXT, chunker TEXT,
    title TEXT, tags TEXT, date TEXT, kind TEXT, updated_at REAL NOT NULL, date_source TEXT,
    PRIMARY KEY(root, path));
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS chunks(
    id TEXT PRIMARY KEY, root TEXT NOT NULL, path TEXT NOT NULL, position INTEGER NOT NULL,
    hash TEXT NOT NULL, heading TEXT NOT NULL, start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL, page INTEGER, text TEXT NOT NULL, date TEXT, date_source TEXT);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(root, path);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks(hash);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts
    USING fts5(stems, tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.rowid;
END;
CREATE TABLE IF NOT EXISTS excludes(
    root TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY(root, path));
CREATE TABLE IF NOT EXISTS journal(
    id INTEGER PRIMARY KEY, root TEXT NOT NULL, path TEXT NOT NULL, op TEXT NOT NULL,
    started REAL NOT NULL);
"""

INDEXED, SKIPPED, FAILED = "indexed", "skipped", "failed"


def read_only_place(folder: Path) -> bool:
    """True when nothing can be written in ``folder`` (a read-only mount, or no write
    permission)."""
    import os

    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return True
    except OSError:
        return False
    return not os.access(folder, os.W_OK)


@dataclass
class FileRow:
    root: str
    path: str
    size: int
    mtime_ns: int
    sha256: str
    status: str
    reason: str | None = None
    model_id: str | None = None
    chunker: str | None = None
    title: str | None = None
    tags: list[str] = field(default_factory=list)
    date: str | None = None
    kind: str | None = None
    updated_at: float = 0.0
    date_source: str | None = None  # where ``date`` came from (`ingest.dates`); None: undated


@dataclass
class ChunkRow:
    id: str
    span: Span  # read back from the manifest, an undated chunk carries its file's mtime day
    position: int
    hash: str
    text: str


_FILE_COLS = (
    "root, path, size, mtime_ns, sha256, status, reason, model_id, chunker, title, tags, date, "
    "kind, "
    "updated_at, date_source"
)
_CHUNK_COLS = (
    "id, root, path, position, hash, heading, start_line, end_line, page, text, date, date_source"
)
#: a chunk as read: its own date, else its file's modification day (``MODIFIED``)
_CHUNK_READ = (
    "c.id, c.root, c.path, c.position, c.hash, c.heading, c.start_line, c.end_line, c.page, "
    "c.text, "
    "COALESCE(c.date, date(f.mtime_ns / 1000000000, 'unixepoch')), "
    f"CASE WHEN c.date IS NULL THEN '{MODIFIED}' ELSE c.date_source END "
    "FROM chunks c LEFT JOIN files f ON f.root = c.root AND f.path = c.path"
)


#: columns added after a table was first created (schema 1 → 2: dates): added in place on open
_ADDED = {
    "files": (("date_source", "TEXT"),),
    "chunks": (("date", "TEXT"), ("date_source", "TEXT")),
}


def _add_columns(db: sqlite3.Connection) -> None:
    for table, columns in _ADDED.items():
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns:
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _chunk_values(c: ChunkRow) -> tuple:
    s = c.span
    # an mtime day is never stored: it is read from the file row
    dated = s.intrinsic_date is not None
    return (
        c.id,
        s.root,
        s.path,
        c.position,
        c.hash,
        s.heading,
        s.start_line,
        s.end_line,
        s.page,
        c.text,
        s.date if dated else None,
        s.date_source if dated else None,
    )


def _chunk(r: tuple) -> ChunkRow:
    cid, root, path, position, chash, heading, start, end, page, text, date, source = r
    return ChunkRow(
        cid, Span(root, path, heading, start, end, page, date, source), position, chash, text
    )


def _file(row: tuple) -> FileRow:
    f = FileRow(*row)
    f.tags = list(_tags(row[10])) if row[10] and row[10] != "[]" else []
    return f


@functools.lru_cache(maxsize=4096)
def _tags(raw: str) -> tuple[str, ...]:
    """Tag lists repeat across a vault's notes: each distinct one is decoded once (100k rows: 0.6 s
    → 0.05 s)."""
    return tuple(json.loads(raw))


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.readonly = False
        self._count_cache: tuple[tuple[int, int], int] | None = (
            None  # ((data_version, own changes), count)
        )
        try:
            self.db = sqlite3.connect(
                path, timeout=30, isolation_level=None, check_same_thread=False
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            _add_columns(self.db)
        except sqlite3.OperationalError:
            if not (path.exists() and read_only_place(path.parent)):
                raise
            # a read-only KB_HOME (a read-only mount, a backup): nothing can write it, so read it as
            # immutable
            self.db = sqlite3.connect(
                f"{path.as_uri()}?immutable=1",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            self.readonly = True
            return
        if self.get_meta("schema") is None:
            self.set_meta("schema", SCHEMA_VERSION)
            if not self.chunk_count():
                self.set_meta("lexical", LEXICAL_FIELDS)
        stale = self.get_meta("lexical") != LEXICAL_FIELDS
        if stale or (
            self.db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == 0
            and self.chunk_count()
        ):
            self.rebuild_lexical()

    def rebuild_lexical(self) -> None:
        """Re-create the FTS5 rows from the chunk rows (after an upgrade or a manual edit)."""
        with self.transaction():
            self.db.execute("DELETE FROM chunks_fts")
            rows = self.db.execute("SELECT rowid, path, heading, text FROM chunks").fetchall()
            self.db.executemany(
                "INSERT INTO chunks_fts(rowid, stems) VALUES(?, ?)",
                [(r, index_text(lexical_fields(p, h, t))) for r, p, h, t in rows],
            )
            self.set_meta("lexical", LEXICAL_FIELDS)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    # -- roots
    def add_root(self, root: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO roots(root, added_at) VALUES(?, ?)", (root, time.time())
        )

    def roots(self) -> list[tuple[str, float | None]]:
        return list(self.db.execute("SELECT root, last_sync FROM roots ORDER BY root"))

    def touch_root(self, root: str) -> None:
        self.db.execute("UPDATE roots SET last_sync=? WHERE root=?", (time.time(), root))

    def remove_root(self, root: str) -> None:
        self.db.execute("DELETE FROM roots WHERE root=?", (root,))
        self.db.execute("DELETE FROM excludes WHERE root=?", (root,))

    def exclude(self, root: str, path: str) -> None:
        """Keep a forgotten folder or file out of future syncs of its root."""
        self.db.execute("INSERT OR IGNORE INTO excludes(root, path) VALUES(?, ?)", (root, path))

    def include(self, root: str, path: str) -> None:
        """Undo `exclude`: the folder or file is synced with its root again."""
        self.db.execute("DELETE FROM excludes WHERE root=? AND path=?", (root, path))

    def excludes(self, root: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM excludes WHERE root=?", (root,))]

    # -- files
    def files(self, root: str | None = None) -> dict[tuple[str, str], FileRow]:
        q = f"SELECT {_FILE_COLS} FROM files"
        rows = self.db.execute(q + " WHERE root=?", (root,)) if root else self.db.execute(q)
        return {(r[0], r[1]): _file(r) for r in rows}

    def file(self, root: str, path: str) -> FileRow | None:
        r = self.db.execute(
            f"SELECT {_FILE_COLS} FROM files WHERE root=? AND path=?", (root, path)
        ).fetchone()
        return _file(r) if r else None

    def put_file(self, f: FileRow) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO files({_FILE_COLS}) VALUES({','.join('?' * 15)})",
            (
                f.root,
                f.path,
                f.size,
                f.mtime_ns,
                f.sha256,
                f.status,
                f.reason,
                f.model_id,
                f.chunker,
                f.title,
                json.dumps(f.tags, ensure_ascii=False),
                f.date,
                f.kind,
                time.time(),
                f.date_source,
            ),
        )

    def touch_file(self, root: str, path: str, size: int, mtime_ns: int) -> None:
        self.db.execute(
            "UPDATE files SET size=?, mtime_ns=? WHERE root=? AND path=?",
            (size, mtime_ns, root, path),
        )

    def delete_file(self, root: str, path: str) -> None:
        self.db.execute("DELETE FROM files WHERE root=? AND path=?", (root, path))
        self.db.execute("DELETE FROM chunks WHERE root=? AND path=?", (root, path))

    def status_counts(self, root: str | None = None) -> dict[str, int]:
        """Files by status (indexed, skipped, failed), of one root or of all."""
        if root is None:
            q = self.db.execute("SELECT status, COUNT(*) FROM files GROUP BY status")
        else:
            q = self.db.execute(
                "SELECT status, COUNT(*) FROM files WHERE root=? GROUP BY status", (root,)
            )
        return dict(q.fetchall())

    def problems(self) -> list[FileRow]:
        rows = self.db.execute(
            f"SELECT {_FILE_COLS} FROM files WHERE status != ? OR reason IS NOT NULL "
            "ORDER BY root, path",
            (INDEXED,),
        )
        return [_file(r) for r in rows]

    # -- chunks
    def chunks_of(self, root: str, path: str) -> list[ChunkRow]:
        q = f"SELECT {_CHUNK_READ} WHERE c.root=? AND c.path=? ORDER BY c.position"
        return [_chunk(r) for r in self.db.execute(q, (root, path))]

    def chunk_at(self, root: str, path: str, position: int) -> ChunkRow | None:
        """The chunk at ``position`` in a note (a passage's neighbour), or None."""
        q = f"SELECT {_CHUNK_READ} WHERE c.root=? AND c.path=? AND c.position=?"
        row = self.db.execute(q, (root, path, position)).fetchone()
        return _chunk(row) if row else None

    def replace_chunks(self, root: str, path: str, chunks: Iterable[ChunkRow]) -> None:
        """Replace a file's chunk rows and their lexical (FTS5) rows; call inside a transaction."""
        chunks = list(chunks)
        self.db.execute(
            "DELETE FROM chunks WHERE root=? AND path=?", (root, path)
        )  # trigger clears FTS rows
        self.db.executemany(
            f"INSERT INTO chunks({_CHUNK_COLS}) VALUES({','.join('?' * 12)})",
            [_chunk_values(c) for c in chunks],
        )
        self.db.executemany(
            "INSERT INTO chunks_fts(rowid, stems) VALUES((SELECT rowid FROM chunks WHERE id=?), ?)",
            [
                (c.id, index_text(lexical_fields(c.span.path, c.span.heading, c.text)))
                for c in chunks
            ],
        )

    def chunks_by_id(self, ids: list[str]) -> dict[str, ChunkRow]:
        out: dict[str, ChunkRow] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = f"SELECT {_CHUNK_READ} WHERE c.id IN ({','.join('?' * len(part))})"
            out.update({r[0]: _chunk(r) for r in self.db.execute(q, part)})
        return out

    def stems_by_id(self, ids: list[str]) -> dict[str, set[str]]:
        """The lexical terms each chunk was indexed with (its FTS5 row: path words, heading, text —
        stemmed)."""
        out: dict[str, set[str]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            q = (
                f"SELECT c.id, f.stems FROM chunks c JOIN chunks_fts f ON f.rowid = c.rowid "
                f"WHERE c.id IN ({','.join('?' * len(part))})"
            )
            out.update({cid: set(stems.split()) for cid, stems in self.db.execute(q, part)})
        return out

    def ids_for_hashes(self, hashes: list[str]) -> dict[str, str]:
        """hash → one chunk id already holding a vector for that content."""
        out: dict[str, str] = {}
        for i in range(0, len(hashes), 500):
            part = hashes[i : i + 500]
            q = f"SELECT hash, id FROM chunks WHERE hash IN ({','.join('?' * len(part))})"
            for h, cid in self.db.execute(q, part):
                out.setdefault(h, cid)
        return out

    def all_chunk_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM chunks")]

    def chunk_count(self) -> int:
        """Chunks in the index; cached until this or another connection writes (COUNT(*) scans the
        table: ~20 ms at a million chunks, and every search asks)."""
        key = (self.db.execute("PRAGMA data_version").fetchone()[0], self.db.total_changes)
        if self._count_cache is not None and self._count_cache[0] == key:
            return self._count_cache[1]
        n = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        self._count_cache = (key, n)
        return n

    def drop_chunks(self, ids: list[str]) -> set[tuple[str, str]]:
        """Remove chunk rows; their files are marked stale (sha256 '') so the next sync redoes
        them."""
        files: set[tuple[str, str]] = set()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            files.update(
                self.db.execute(
                    f"SELECT DISTINCT root, path FROM chunks WHERE id IN ({marks})", part
                )
            )
            self.db.execute(f"DELETE FROM chunks WHERE id IN ({marks})", part)
        for root, path in files:
            self.db.execute("UPDATE files SET sha256='' WHERE root=? AND path=?", (root, path))
        return files

    # -- reading for search and status
    def data_version(self) -> int:
        """Changes whenever *another* connection (process) commits to the manifest."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def first_chunk_ids(self, n: int) -> list[str]:
        """The first ``n`` chunk ids in id order: ids are content hashes, so this is a spread-out
        sample that is the same on every run."""
        return [r[0] for r in self.db.execute("SELECT id FROM chunks ORDER BY id LIMIT ?", (n,))]

    def doc_freq(self, terms: list[str]) -> dict[str, int]:
        """How many chunks hold each lexical term (terms no chunk holds are absent)."""
        if not terms:
            return {}
        marks = ",".join("?" * len(terms))
        q = f"SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})"
        return dict(self.db.execute(q, terms))

    def bm25(
        self,
        expr: str,
        k: int,
        folder: str | None = None,
        tag: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` best chunks for an FTS5 MATCH expression, (id, BM25 score) best first, inside a
        folder (relative to a root), with a tag, dated from ``since`` to ``until`` (ISO days,
        inclusive: a passage's own date, else its file's modification day)."""
        if not (folder or tag or since or until):  # FTS alone, then ids: no join over every match
            got = self.db.execute(
                "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY bm25(chunks_fts) LIMIT ?",
                (expr, k),
            ).fetchall()
            if not got:
                return []
            marks = ",".join("?" * len(got))
            q = f"SELECT rowid, id FROM chunks WHERE rowid IN ({marks})"
            ids = dict(self.db.execute(q, [r for r, _ in got]))
            return [(ids[r], float(s)) for r, s in got if r in ids]
        sql = (
            "SELECT c.id, -bm25(chunks_fts) AS s FROM chunks_fts "
            "JOIN chunks c ON c.rowid = chunks_fts.rowid "
            "JOIN files f ON f.root = c.root AND f.path = c.path WHERE chunks_fts MATCH ?"
        )
        args: list[Any] = [expr]
        if folder:
            prefix = folder.strip("/")
            sql += " AND (c.path = ? OR c.path LIKE ? ESCAPE '\\')"
            args += [prefix, re.sub(r"([%_\\])", r"\\\1", prefix) + "/%"]
        if tag:
            sql += " AND f.tags LIKE ?"
            args.append('%"' + tag.lstrip("#").replace('"', "") + '"%')
        day = "COALESCE(c.date, date(f.mtime_ns / 1000000000, 'unixepoch'))"
        if since:
            sql += f" AND {day} >= ?"
            args.append(since)
        if until:
            sql += f" AND {day} <= ?"
            args.append(until)
        sql += " ORDER BY bm25(chunks_fts) LIMIT ?"
        args.append(k)
        return [(cid, float(score)) for cid, score in self.db.execute(sql, args)]

    def chunks_at_path(self, path: str) -> list[ChunkRow]:
        """Every chunk of the notes at ``path`` (relative) in any root, in note order."""
        q = f"SELECT {_CHUNK_READ} WHERE c.path=? ORDER BY c.root, c.position"
        return [_chunk(r) for r in self.db.execute(q, (path,))]

    def sample_text(self, chunks: int = 300, chars: int = 400) -> str:
        """The start of ``chunks`` random chunks, joined (to tell which script the notes are in)."""
        row = self.db.execute(
            "SELECT group_concat(substr(text, 1, ?), ' ') "
            "FROM (SELECT text FROM chunks ORDER BY random() LIMIT ?)",
            (chars, chunks),
        ).fetchone()
        return row[0] or ""

    def duplicate_positions(self) -> list[tuple[str, str]]:
        """(root, path) of notes holding two chunks at one position (never, in a sound index)."""
        q = "SELECT root, path FROM chunks GROUP BY root, path, position HAVING COUNT(*) > 1"
        return [(r, p) for r, p in self.db.execute(q)]

    def marked_for_reindex(self) -> int:
        """Files whose chunks were dropped (sha256 cleared): the next sync re-embeds them."""
        return int(self.db.execute("SELECT COUNT(*) FROM files WHERE sha256=''").fetchone()[0])

    # -- journal
    def journal_add(self, items: Iterable[tuple[str, str, str]]) -> None:
        now = time.time()
        self.db.executemany(
            "INSERT INTO journal(root, path, op, started) VALUES(?, ?, ?, ?)",
            [(*i, now) for i in items],
        )

    def journal_clear(self) -> None:
        self.db.execute("DELETE FROM journal")

    def journal_pending(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
