"""SQLite metadata (WAL) with a versioned schema. Plain rows; the services give them meaning."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import AlreadyExists

SCHEMA_VERSION = 2

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE NOT NULL,
                            parent TEXT, kind TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE images (id TEXT PRIMARY KEY, top_layer TEXT, created TEXT NOT NULL,
                         parent TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0,
                         added REAL NOT NULL);
    CREATE TABLE tags (ref TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id));
    CREATE TABLE repo_digests (ref TEXT PRIMARY KEY, image_id TEXT NOT NULL REFERENCES images(id));
    CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, image_id TEXT NOT NULL,
                             created TEXT NOT NULL, config TEXT NOT NULL, state TEXT NOT NULL);
    """,
    # distribution metadata: which compressed blob a layer (DiffID) is in which registry repository
    2: """
    CREATE TABLE layer_blobs (diff_id TEXT NOT NULL, registry TEXT NOT NULL, repo TEXT NOT NULL,
                              digest TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL,
                              PRIMARY KEY (diff_id, registry, repo, digest));
    """,
}


class Metadata:
    """The engine's tables. Single writer (the daemon's event loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        self.db = _Locked(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"metadata schema {version} is newer than this dockyard ({SCHEMA_VERSION})")
        for v in range(version + 1, SCHEMA_VERSION + 1):
            with self.tx():
                for stmt in _MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(v),))

    def tx(self) -> "_Tx":
        """A transaction context (BEGIN IMMEDIATE … COMMIT/ROLLBACK)."""
        return _Tx(self.db)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    # snapshots
    def snapshot(self, key: str) -> sqlite3.Row | None:
        """One snapshot row by key."""
        return self.db.execute("SELECT * FROM snapshots WHERE key=?", (key,)).fetchone()

    def add_snapshot(self, key: str, parent: str | None, kind: str) -> int:
        """Insert a snapshot row, return its number."""
        cur = self.db.execute("INSERT INTO snapshots (key, parent, kind) VALUES (?,?,?)", (key, parent, kind))
        return int(cur.lastrowid or 0)

    def set_snapshot_kind(self, key: str, kind: str, size: int) -> None:
        """Change a snapshot's kind and recorded size."""
        self.db.execute("UPDATE snapshots SET kind=?, size=? WHERE key=?", (kind, size, key))

    def rekey_snapshot(self, old: str, key: str, parent: str | None, kind: str, size: int) -> None:
        """Give a snapshot its final key, parent, kind and size (a staged layer becoming a chain)."""
        try:
            self.db.execute("UPDATE snapshots SET key=?, parent=?, kind=?, size=? WHERE key=?",
                            (key, parent, kind, size, old))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"snapshot {key} exists") from None

    def remove_snapshot(self, key: str) -> None:
        """Delete a snapshot row."""
        self.db.execute("DELETE FROM snapshots WHERE key=?", (key,))

    def snapshots_of_kind(self, kind: str) -> list[str]:
        """Keys of snapshots of one kind."""
        return [r[0] for r in self.db.execute("SELECT key FROM snapshots WHERE kind=?", (kind,))]

    def snapshot_ids(self) -> list[int]:
        """Every snapshot number."""
        return [r[0] for r in self.db.execute("SELECT id FROM snapshots")]

    # images
    def put_image(self, image_id: str, top_layer: str | None, created: str, parent: str, size: int, added: float) -> None:
        """Insert an image row (no-op if present)."""
        self.db.execute("INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?)", (image_id, top_layer, created, parent, size, added))

    def image(self, image_id: str) -> sqlite3.Row | None:
        """One image row."""
        return self.db.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()

    def images(self) -> list[sqlite3.Row]:
        """Every image row, newest first."""
        return list(self.db.execute("SELECT * FROM images ORDER BY created DESC, added DESC"))

    def image_ids_with_prefix(self, prefix: str) -> list[str]:
        """Image IDs whose hex starts with `prefix`."""
        return [r[0] for r in self.db.execute("SELECT id FROM images WHERE substr(id, 8, ?) = ?", (len(prefix), prefix))]

    def delete_image(self, image_id: str) -> None:
        """Delete an image row and its tags."""
        self.db.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
        self.db.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
        self.db.execute("DELETE FROM images WHERE id=?", (image_id,))

    def children_of_image(self, image_id: str) -> list[str]:
        """Images whose parent is `image_id`."""
        return [r[0] for r in self.db.execute("SELECT id FROM images WHERE parent=?", (image_id,))]

    # tags
    def tag(self, ref: str) -> str | None:
        """Image ID a tag points at."""
        row = self.db.execute("SELECT image_id FROM tags WHERE ref=?", (ref,)).fetchone()
        return row[0] if row else None

    def set_tag(self, ref: str, image_id: str) -> None:
        """Point a tag at an image."""
        self.db.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (ref, image_id))

    def set_repo_digest(self, ref: str, image_id: str) -> None:
        """Record `repo@sha256:…` (the manifest an image was pulled by) for an image."""
        self.db.execute("INSERT OR REPLACE INTO repo_digests VALUES (?,?)", (ref, image_id))

    def remove_tag(self, ref: str) -> None:
        """Delete a tag."""
        self.db.execute("DELETE FROM tags WHERE ref=?", (ref,))

    def tags_of(self, image_id: str) -> list[str]:
        """Tags of one image, sorted."""
        return sorted(r[0] for r in self.db.execute("SELECT ref FROM tags WHERE image_id=?", (image_id,)))

    def digests_of(self, image_id: str) -> list[str]:
        """Repo digests of one image."""
        return sorted(r[0] for r in self.db.execute("SELECT ref FROM repo_digests WHERE image_id=?", (image_id,)))

    # distribution metadata
    def add_layer_blob(self, diff_id: str, registry: str, repo: str, digest: str, media_type: str,
                       size: int) -> None:
        """Remember that a layer is the blob `digest` in `registry`/`repo`."""
        self.db.execute("INSERT OR REPLACE INTO layer_blobs VALUES (?,?,?,?,?,?)",
                        (diff_id, registry, repo, digest, media_type, size))

    def layer_blobs(self, diff_id: str, registry: str | None) -> list[sqlite3.Row]:
        """The blobs a layer is known as in one registry (None: any), any repository."""
        if registry is None:
            return list(self.db.execute("SELECT * FROM layer_blobs WHERE diff_id=?", (diff_id,)))
        return list(self.db.execute("SELECT * FROM layer_blobs WHERE diff_id=? AND registry=?", (diff_id, registry)))

    def forget_layer_blob(self, diff_id: str, registry: str, repo: str, digest: str) -> None:
        """The registry no longer has it."""
        self.db.execute("DELETE FROM layer_blobs WHERE diff_id=? AND registry=? AND repo=? AND digest=?",
                        (diff_id, registry, repo, digest))

    def tags_of_repo(self, name: str) -> list[str]:
        """Tags (`name:tag`) of one repository, sorted."""
        return sorted(r[0] for r in self.db.execute("SELECT ref FROM tags WHERE substr(ref, 1, ?) = ?",
                                                    (len(name) + 1, name + ":")))

    # containers
    def put_container(self, cid: str, name: str, image_id: str, created: str, config: dict[str, Any],
                      state: dict[str, Any]) -> None:
        """Insert a container row."""
        self.db.execute("INSERT INTO containers VALUES (?,?,?,?,?,?)",
                        (cid, name, image_id, created, json.dumps(config), json.dumps(state)))

    def update_container_state(self, cid: str, state: dict[str, Any]) -> None:
        """Replace a container's state."""
        self.db.execute("UPDATE containers SET state=? WHERE id=?", (json.dumps(state), cid))

    def update_container_config(self, cid: str, config: dict[str, Any]) -> None:
        """Replace a container's config (`update` changes its resources and restart policy)."""
        self.db.execute("UPDATE containers SET config=? WHERE id=?", (json.dumps(config), cid))

    def rename_container(self, cid: str, name: str) -> None:
        """Change a container's name."""
        self.db.execute("UPDATE containers SET name=? WHERE id=?", (name, cid))

    def delete_container(self, cid: str) -> None:
        """Delete a container row."""
        self.db.execute("DELETE FROM containers WHERE id=?", (cid,))

    def containers(self) -> Iterator[sqlite3.Row]:
        """Every container row, oldest first."""
        return iter(list(self.db.execute("SELECT * FROM containers ORDER BY created, rowid")))


class _Locked:
    """The connection behind one re-entrant lock: the event loop and worker threads (imports)
    share it, and a transaction holds the lock from BEGIN to COMMIT."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.lock = threading.RLock()

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> "_Result":
        with self.lock:
            cur = self.conn.execute(sql, args)
            return _Result(cur.fetchall(), cur.lastrowid)

    def close(self) -> None:
        self.conn.close()


class _Result:
    """Rows fetched under the lock."""

    def __init__(self, rows: list[sqlite3.Row], lastrowid: int | None) -> None:
        self.rows, self.lastrowid = rows, lastrowid

    def fetchone(self) -> sqlite3.Row | None:
        return self.rows[0] if self.rows else None

    def __iter__(self) -> Iterator[sqlite3.Row]:
        return iter(self.rows)


class _Tx:
    def __init__(self, db: _Locked) -> None:
        self.db = db

    def __enter__(self) -> _Locked:
        self.db.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.db.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.db.lock.release()
