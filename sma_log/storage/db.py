"""Opening a database file: refuse what is not ours, create, migrate, set pragmas.

The order matters. A file that exists is first judged from its header bytes alone
(no SQLite connection yet), so a foreign, empty, truncated or newer file is refused
without a byte written. Only then is it opened, checked again through SQLite, backed
up and migrated inside an IMMEDIATE transaction.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import urllib.parse
from pathlib import Path
from typing import Any

from ..domain.clock import now_utc
from .errors import DatabaseRefused, StorageError
from .schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, VACUUM_AFTER

#: One row read from the database: column name → value.
Row = dict[str, Any]


def row_count(conn: sqlite3.Connection, table: str) -> int:
    """How many rows ``table`` has (a name sma-log knows: it is not quoted)."""
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 15_000
#: SQLite's automatic checkpoint threshold (its default is 1,000 pages): see _set_pragmas.
WAL_AUTOCHECKPOINT_PAGES = 10_000


def inspect_header(path: Path) -> int:
    """Judge an existing file from its first 100 bytes; return its schema version.

    Raises :class:`DatabaseRefused` for anything sma-log must not open.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            header = fh.read(100)
    except PermissionError:
        raise DatabaseRefused(f"{path}: permission denied (cannot read the file)") from None
    except IsADirectoryError:
        raise DatabaseRefused(f"{path}: is a folder, not a database file") from None
    except OSError as exc:
        raise DatabaseRefused(f"{path}: cannot be read ({exc.strerror})") from None
    if size == 0:
        raise DatabaseRefused(f"{path}: the file is empty (0 bytes), not an sma-log database")
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise DatabaseRefused(f"{path}: not an SQLite database, so not an sma-log database")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, page_count = struct.unpack(">II", header[24:32])
    user_version: int = struct.unpack(">i", header[60:64])[0]
    application_id = struct.unpack(">I", header[68:72])[0]
    valid_for = struct.unpack(">I", header[92:96])[0]
    if application_id != APPLICATION_ID:
        raise DatabaseRefused(
            f"{path}: an SQLite database of another application, not an sma-log database"
        )
    if user_version > SCHEMA_VERSION:
        raise DatabaseRefused(
            f"{path}: written by a newer sma-log (schema {user_version}; this version reads "
            f"up to {SCHEMA_VERSION}): upgrade sma-log to open it"
        )
    # The size check holds only for a file nobody is writing: while another process
    # checkpoints its write-ahead log, page 1 (with the new size) can reach the disk
    # before the pages that extend the file. With a -wal beside it, SQLite judges.
    live = Path(f"{path}-wal").exists()
    if not live and valid_for == change_counter and page_count and size < page_count * page_size:
        raise DatabaseRefused(
            f"{path}: the file is truncated ({size} bytes, its header says "
            f"{page_count * page_size}): restore it from a backup"
        )
    return user_version


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        # quote the bytes: a file name that is not UTF-8 (surrogate escapes) stays exact
        uri = f"file:{urllib.parse.quote(os.fsencode(path.absolute()))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _set_pragmas(conn: sqlite3.Connection, readonly: bool) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        return
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode.lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    # In WAL mode NORMAL can lose the last commits on a power cut: FULL fsyncs each one.
    conn.execute("PRAGMA synchronous = FULL")
    # Checkpoints are left to Litestream when it replicates the file (sma-log replicate
    # checkpoints at 1,000 pages, after shipping them): SQLite's own automatic one, at
    # the same 1,000 pages, could copy into the file frames Litestream has not shipped
    # yet and restart the log, and the replica would miss them (measured: issue 15).
    # Without Litestream SQLite still checkpoints, at 10,000 pages (~40 MB of log).
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")


def _create(path: Path) -> None:
    """Build a new database beside ``path`` and link it into place in one step.

    A crash during creation leaves at most a stray temporary file, never a half-made
    database at ``path``.
    """
    import sqlite_utils

    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = folder / f".{path.name}.creating-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    try:
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            db = sqlite_utils.Database(conn)
            conn.execute("BEGIN IMMEDIATE")
            for version in sorted(MIGRATIONS):
                MIGRATIONS[version](db)
            from . import reportcache

            reportcache.ensure(conn)
            _write_meta(conn, created=True)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.chmod(tmp, 0o600)
        # os.link fails if someone created ``path`` meanwhile: then open theirs.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            # No hard links here (FAT, some network drives): rename, unless taken.
            if not path.exists():
                os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _write_meta(conn: sqlite3.Connection, created: bool = False) -> None:
    from .. import __version__

    rows = {"last_opened_by": __version__, "sqlite_version": sqlite3.sqlite_version}
    if created:
        rows["created_by"] = __version__
        rows["created_at"] = now_utc().to_iso8601_string()
    for key, value in rows.items():
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _note_versions(conn: sqlite3.Connection) -> None:
    """Record which sma-log and SQLite library last wrote the file, when they changed."""
    from .. import __version__
    from . import reportcache  # the report's definitions: imported only to open a file

    stored = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    stale_report = stored.get(reportcache.META_KEY) != reportcache.definition_version()
    if stale_report or (stored.get("last_opened_by"), stored.get("sqlite_version")) != (
        __version__,
        sqlite3.sqlite_version,
    ):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if stale_report:  # built by other definitions: rebuilt before any report
                reportcache.ensure(conn)
            _write_meta(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def backup_path(path: Path, version: int) -> Path:
    """A new, unused name beside ``path`` for the backup taken before a migration."""
    stamp = now_utc().format("YYYYMMDD[T]HHmmss[Z]")
    candidate = path.with_name(f"{path.name}.schema{version}-{stamp}.bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.schema{version}-{stamp}-{n}.bak")
        n += 1
    return candidate


def _migrate(conn: sqlite3.Connection, path: Path) -> Path | None:
    """Bring the file to :data:`SCHEMA_VERSION`; return the backup taken, if any."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current == SCHEMA_VERSION:
        return None
    import sqlite_utils  # only when there is something to migrate (start-up pays otherwise)

    backup = backup_path(path, current)
    fd = os.open(backup, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    dest = sqlite3.connect(str(backup))
    try:
        conn.backup(dest)
    finally:
        dest.close()
    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](db)
        from . import reportcache

        reportcache.ensure(conn)
        _write_meta(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, Exception):
            raise StorageError(
                f"{path}: upgrading the database from schema {current} to {SCHEMA_VERSION} "
                f"failed ({exc}); the file was left as it was (backup: {backup.name})"
            ) from exc
        raise
    if current < VACUUM_AFTER <= SCHEMA_VERSION:
        # The lean audit log (schema 5) frees pages that only VACUUM gives back; never
        # inside the migration's transaction. A failure (disk full) leaves the file as
        # migrated, only larger.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("VACUUM")
    return backup


def _judge(conn: sqlite3.Connection, path: Path) -> None:
    """Checked again through SQLite: the header can lag the write-ahead log."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if app_id != APPLICATION_ID:
        raise DatabaseRefused(f"{path}: not an sma-log database")
    if version > SCHEMA_VERSION:
        raise DatabaseRefused(
            f"{path}: written by a newer sma-log (schema {version}; this version reads "
            f"up to {SCHEMA_VERSION}): upgrade sma-log to open it"
        )
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def open_connection(
    path: str | os.PathLike[str], *, create: bool = True, readonly: bool = False
) -> tuple[sqlite3.Connection, Path | None]:
    """Open (creating or migrating as needed) and return ``(connection, backup)``."""
    path = Path(path).expanduser()
    if not path.exists():
        if not create or readonly:
            raise DatabaseRefused(f"{path}: no such database file")
        try:
            _create(path)
        except OSError as exc:
            raise DatabaseRefused(
                f"{path}: cannot create the database ({exc.strerror or exc})"
            ) from None
        except sqlite3.Error as exc:
            raise DatabaseRefused(f"{path}: cannot create the database ({exc})") from None
    inspect_header(path)
    if not readonly:
        # Root passes os.access whatever the mode says: read the write bits too.
        if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222:
            raise DatabaseRefused(
                f"{path}: the file is read-only; sma-log needs to write to it "
                "(check its permissions, or use a copy)"
            )
        if not os.access(path.parent, os.W_OK) and not Path(f"{path}-wal").exists():
            raise DatabaseRefused(
                f"{path.parent}: the folder is read-only; SQLite needs to create its "
                "journal beside the database"
            )
    wal = Path(f"{path}-wal")
    if not readonly and wal.exists() and wal.stat().st_size > 0:
        # Commits still in the log: judge them through a read-only connection first,
        # because closing a read-write one that refuses would checkpoint the log into
        # the file (modifying a file we refuse).
        try:
            probe = _connect(path, readonly=True)
        except sqlite3.Error as exc:
            raise DatabaseRefused(f"{path}: cannot be opened ({exc})") from None
        try:
            _judge(probe, path)
        except sqlite3.DatabaseError as exc:
            raise DatabaseRefused(
                f"{path}: the database is damaged or unreadable ({exc})"
            ) from None
        finally:
            probe.close()
    try:
        conn = _connect(path, readonly=readonly)
    except sqlite3.Error as exc:
        raise DatabaseRefused(f"{path}: cannot be opened ({exc})") from None
    try:
        _judge(conn, path)
        _set_pragmas(conn, readonly)
        backup = None if readonly else _migrate(conn, path)
        if not readonly and backup is None:
            _note_versions(conn)
    except StorageError:  # refused, or a migration failed (rolled back)
        conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        conn.close()
        if readonly and not os.access(path.parent, os.W_OK):
            # Not damaged: a WAL database cannot be read without its -shm file beside it.
            raise DatabaseRefused(
                f"{path.parent}: the folder is read-only and SQLite needs to create the "
                "database's -shm file beside it to read it: copy the file to a writable folder"
            ) from None
        raise DatabaseRefused(f"{path}: the database is damaged or unreadable ({exc})") from None
    except OSError as exc:
        conn.close()
        raise StorageError(f"{path}: {exc.strerror or exc}") from None
    return conn, backup
