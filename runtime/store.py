"""A party's store: its state after every step, in one SQLite file, sealed at rest.

After each completed run-to-completion step a driver commits, in one transaction, the
party's record (machine state, I/O buffer, device state record with its keys, timers,
transport positions) and the messages the step sent, in an outbox. It posts them after
the commit and marks them sent. A crash before the commit loses the step and nothing
was sent; a crash after it finds the step done and its messages in the outbox, posted
again on start (at most a duplicate, which the protocols refuse as a replay). On start
the driver restores the party from `load()`.

The record is sealed with PyNaCl's secretbox (XSalsa20-Poly1305) under a 32-byte key the
application supplies; the file is created readable and writable by its owner only
(SQLite gives its -wal and -shm files the same mode), in WAL mode, so that a reader never
sees half a step. A check value sealed under the key tells a wrong key from a damaged
record. Outbox entries are the wire bytes the protocol sealed already, as any observer of
the network sees them.

Opening validates before it writes anything: a file that is not a store, is truncated or
damaged, was written by a newer schema, or is sealed under another key raises
`StoreError` naming the file and the problem, and the file is left as it was. An older
schema is migrated in one transaction (`MIGRATIONS`), or not at all.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox
from nacl.utils import random as nacl_random

from runtime.errors import StoreError

__all__ = ["KEY_SIZE", "MIGRATIONS", "SCHEMA_VERSION", "Outgoing", "Saved", "Store", "new_key"]

SCHEMA_VERSION = 1
KEY_SIZE = SecretBox.KEY_SIZE
_KEY_CHECK = b"fsmc store key check"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE party (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    step INTEGER NOT NULL,          -- how many steps the record has taken
    record BLOB NOT NULL            -- secretbox(nonce || ciphertext) of the party's record
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,         -- in the order the step sent them
    step INTEGER NOT NULL,
    transport TEXT NOT NULL,
    address TEXT,                   -- NULL: the channel's members
    data BLOB NOT NULL,
    label BLOB NOT NULL             -- what the message is, for traces (sealed with the record key)
);
"""

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: dict[int, Migration] = {}
"""version -> what brings a store of that version to the next, inside the transaction
that also records the new version. None yet: version 1 is the first schema."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message a step sent: posted after the commit, until then in the outbox."""

    transport: str
    address: str | None
    data: bytes
    label: bytes = b""
    id: int | None = None  # the outbox row, once stored


@dataclass(frozen=True, slots=True)
class Saved:
    """What `load` finds: the step count, the party's record, what is still to be posted."""

    step: int
    record: bytes
    outbox: tuple[Outgoing, ...]


class Store:
    """One party's store file. `create` makes a new one, `open` an existing one."""

    def __init__(self, path: Path, connection: sqlite3.Connection, box: SecretBox) -> None:
        self.path = path
        self._db = connection
        self._box = box

    # --- opening

    @classmethod
    def create(cls, path: str | Path, key: bytes, *, party: str, protocol: str) -> Store:
        """A new store at `path` (which must not exist), for `party` of `protocol`."""
        path = Path(path)
        box = _box(path, key)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as e:
            raise StoreError(path, "exists already: open it, or remove it to start again") from e
        except OSError as e:
            raise StoreError(path, f"cannot be created ({e.strerror})") from e
        os.close(fd)
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            with _transaction(db):
                # Statement by statement: executescript would commit first, outside this transaction.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", str(SCHEMA_VERSION)), ("party", party), ("protocol", protocol),
                    ("key_check", box.encrypt(_KEY_CHECK).hex())])
        except BaseException:
            db.close()
            path.unlink(missing_ok=True)
            raise
        return cls(path, db, box)

    @classmethod
    def open(cls, path: str | Path, key: bytes, *, party: str | None = None,
             protocol: str | None = None) -> Store:
        """An existing store, checked before anything is written: a store file, whole, of a
        schema this code knows, sealed under `key`, of `party` and `protocol` when given."""
        path = Path(path)
        box = _box(path, key)
        if not path.is_file():
            raise StoreError(path, "no such store file")
        try:
            db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(path, f"cannot be opened ({e})") from e
        try:
            meta = _validated(path, db, box, party, protocol)
            version = int(meta["schema_version"])
            if version < SCHEMA_VERSION:
                _migrate(path, db, version)
        except BaseException:
            db.close()
            raise
        return cls(path, db, box)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the party's steps

    def commit(self, step: int, record: bytes, outbox: Sequence[Outgoing] = ()) -> tuple[Outgoing, ...]:
        """Step `step` is done: its record and what it sent, in one transaction. Returns
        the outbox entries with their row ids, to mark `sent` once posted."""
        sealed = self._box.encrypt(record)
        with _transaction(self._db):
            self._db.execute("INSERT INTO party VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET step = excluded.step,"
                             " record = excluded.record", (step, bytes(sealed)))
            stored = []
            for out in outbox:
                cursor = self._db.execute(
                    "INSERT INTO outbox (step, transport, address, data, label) VALUES (?, ?, ?, ?, ?)",
                    (step, out.transport, out.address, out.data, bytes(self._box.encrypt(out.label))))
                stored.append(Outgoing(out.transport, out.address, out.data, out.label, cursor.lastrowid))
        return tuple(stored)

    def sent(self, entries: Sequence[Outgoing]) -> None:
        """These outbox entries were posted."""
        with _transaction(self._db):
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(e.id,) for e in entries])

    def load(self) -> Saved | None:
        """The last committed step, or None for a store no step was committed to."""
        row = self._db.execute("SELECT step, record FROM party WHERE id = 1").fetchone()
        if row is None:
            return None
        step, sealed = row
        record = self._open(sealed, "the party's record")
        outbox = tuple(Outgoing(t, a, bytes(d), self._open(lbl, f"outbox entry {i}"), i)
                       for i, t, a, d, lbl in self._db.execute(
                           "SELECT id, transport, address, data, label FROM outbox ORDER BY id"))
        return Saved(step, record, outbox)

    def _open(self, sealed: bytes, what: str) -> bytes:
        try:
            return self._box.decrypt(bytes(sealed))
        except CryptoError as e:
            # The key opened the check value: this is damage, not a wrong key.
            raise StoreError(self.path, f"{what} is damaged (its seal does not verify)") from e


def _box(path: Path, key: bytes) -> SecretBox:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise StoreError(path, f"the store key must be {KEY_SIZE} bytes")
    return SecretBox(key)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _validated(path: Path, db: sqlite3.Connection, box: SecretBox, party: str | None,
               protocol: str | None) -> dict[str, str]:
    try:
        check = db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise StoreError(path, f"damaged ({check[0] if check else 'no answer'} from SQLite's quick_check)")
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            raise StoreError(path, "not an fsmc store (no meta table)" if tables else
                             "empty or truncated: no tables")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as e:
        raise StoreError(path, f"not a store, or damaged ({e})") from e
    version = meta.get("schema_version", "")
    if not version.isdigit():
        raise StoreError(path, f"no schema version ({version!r})")
    if int(version) > SCHEMA_VERSION:
        raise StoreError(path, f"schema version {version} is newer than this fsmc's {SCHEMA_VERSION}: "
                               "open it with the fsmc that wrote it, or a newer one")
    missing = {"party", "outbox"} - tables
    if missing:
        raise StoreError(path, f"truncated: no table {', '.join(sorted(missing))}")
    try:
        if box.decrypt(bytes.fromhex(meta.get("key_check", ""))) != _KEY_CHECK:
            raise CryptoError("another check value")
    except (CryptoError, ValueError) as e:
        raise StoreError(path, "sealed under another key (the key check does not open)") from e
    for name, wanted in (("party", party), ("protocol", protocol)):
        if wanted is not None and meta.get(name) != wanted:
            raise StoreError(path, f"the store of {name} {meta.get(name)!r}, not {wanted!r}")
    return meta


def _migrate(path: Path, db: sqlite3.Connection, version: int) -> None:
    with _transaction(db):
        while version < SCHEMA_VERSION:
            step = MIGRATIONS.get(version)
            if step is None:
                raise StoreError(path, f"no migration from schema version {version}")
            step(db)
            version += 1
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))


def new_key() -> bytes:
    """A fresh random store key (the application keeps it, e.g. in the OS keyring)."""
    return nacl_random(KEY_SIZE)
