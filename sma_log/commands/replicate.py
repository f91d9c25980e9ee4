"""``sma-log replicate``, ``sma-log restore`` and ``sma-log pull``: the database
streamed to a replica by Litestream, a checked copy back from it, and a unit's devices
pooled into one file.

A replica is a full copy of the database (identifiers included: de-identification
applies to exports, not to replicas). A local replica folder is created 0700.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from . import litestream
from .common import EXIT_REFUSED, CommandRefused, Options, site_timezone

#: Exit code of pull when a device's records were merged but conflicts were left.
EXIT_CONFLICTS = 3


# ------------------------------------------------------------------ replicate
@click.command("replicate")
@click.option(
    "--to",
    "to",
    metavar="REPLICA",
    help="A folder (created 0700) or a URL Litestream accepts (s3://, sftp://, gs://, abs://, "
    "webdav://, file://); default: the replica setting (sma-log settings --replica).",
)
@click.option(
    "--sync-interval",
    type=click.FloatRange(0.1, 3600),
    default=litestream.DEFAULT_SYNC_INTERVAL,
    show_default=True,
    metavar="SECONDS",
    help="How often Litestream ships new commits: the most the replica lags the file.",
)
@click.option(
    "--log",
    "log",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append Litestream's own log (debug level) to this file (0600).",
)
@click.pass_obj
def replicate(opts: Options, to: str | None, sync_interval: float, log: Path | None) -> None:
    """Stream the database to a replica with Litestream, until stopped (Ctrl-C).

    Runs in the foreground with one status line (on a terminal), or as a service (see
    the README's systemd unit). Every commit reaches the replica within the sync
    interval. Restore a copy with sma-log restore. The replica is a full copy:
    identifiers are not removed.
    """
    from ..storage.db import inspect_header

    db = opts.db_path.absolute()
    target = to if to is not None else _replica_setting(opts)
    if not db.exists():
        raise CommandRefused(f"{db}: no such database file (nothing to replicate)")
    inspect_header(db)  # a foreign, newer or damaged file: refused before anything runs
    _check_database(db, opts.user)
    guard = _only_replicator(db)  # held until this command ends
    try:
        _replicate(db, target, sync_interval, log)
    finally:
        os.close(guard)


def _replicate(db: Path, target: str, sync_interval: float, log: Path | None) -> None:
    exe = litestream.binary()
    folder = litestream.replica_folder(target)
    created = folder if folder is not None and not folder.exists() else None
    url = litestream.replica_url(target, create=True)
    state = litestream.state_folder()
    meta = litestream.meta_folder(db)
    new_meta = not meta.exists()
    try:
        config = litestream.write_config(state, db, url, sync_interval)
        _run(exe, config, db, url, sync_interval, created, log)
    except CommandRefused:
        if new_meta:  # a refused first start leaves nothing beside the database either
            shutil.rmtree(meta, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _only_replicator(db: Path) -> int:
    """An exclusive ``flock`` on the database file for as long as this replicate runs:
    Litestream wants one instance per database, and two would share its state folder
    beside the file. (SQLite locks with POSIX record locks, which ``flock`` does not
    touch.) A second ``sma-log replicate`` of the same file is refused in one line."""
    import fcntl

    fd = os.open(db, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CommandRefused(
            f"{db}: another sma-log replicate is already running for this database "
            "(one Litestream per database: stop it first)"
        ) from None
    return fd


def _replica_setting(opts: Options) -> str:
    replica = opts.settings.replica
    if not replica:
        raise CommandRefused(
            "no replica: give --to FOLDER|URL, or set one with: sma-log settings --replica URL"
        )
    return replica


def _check_database(db: Path, user: str) -> None:
    from ..storage.store import Store

    Store.open(db, user, create=False, readonly=True).close()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: Litestream gets SIGTERM if sma-log dies (even killed with SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Status:
    """The one status line: on a terminal rewritten in place; in a pipe or a service
    log one line when the first copy is complete, on each error, and at the end."""

    def __init__(self, db: Path, url: str, sync_interval: float) -> None:
        self.head = f"Replicating {db} to {url} (every {sync_interval:g} s)"
        self.short = f"{db.name} to {url} every {sync_interval:g} s"
        self.tty = sys.stderr.isatty()
        self.shipped: str | None = None
        self.txid = 0
        self.errors = 0
        self.last_error = ""
        self.started = time.monotonic()
        self.held: list[str] = []
        self.read_log = False
        self.equal_at: str | None = None

    def flush(self) -> None:
        for line in self.held:
            click.echo(line, err=True)
        self.held.clear()

    def feed(self, line: str) -> None:
        fields = litestream.logfmt(line)
        msg = fields.get("msg", "")
        level = fields.get("level", "")
        if msg == "sync":  # Litestream read the file's log
            self.read_log = True
        # In step: after Litestream read the log, two "replica sync" in a row with the
        # replica at the file's position (a start with nothing to ship uploads nothing;
        # one equal pair alone can come before the log's new commits were read).
        in_step = False
        if msg == "replica sync" and self.read_log:
            position = fields.get("txid.replica")
            if position == fields.get("txid.db"):
                in_step = position == self.equal_at
                self.equal_at = position
            else:
                self.equal_at = None
        shipped = self.shipped is not None and msg in ("ltx file uploaded", "snapshot complete")
        if shipped or in_step:
            first = self.shipped is None
            self.shipped = time.strftime("%H:%M:%S")
            with contextlib.suppress(ValueError, KeyError):
                txid = fields.get("maxTXID") or fields.get("txid.replica") or fields["txid"]
                self.txid = max(self.txid, int(txid, 16))
            if first and not self.tty:
                took = time.monotonic() - self.started
                click.echo(f"{self.head}: replica in step after {took:.1f} s", err=True)
                self.flush()
        elif level in ("ERROR", "WARN"):
            self.errors += 1
            self.last_error = msg + (f": {fields['error']}" if fields.get("error") else "")
            if not self.tty:
                # Held until the first copy: a refused start says its one line only.
                self.held.append(f"sma-log: litestream: {self.last_error}")
                if self.shipped is not None:
                    self.flush()
        else:
            return
        self.draw()

    def draw(self) -> None:
        if not self.tty:
            return
        shipped = f"in step at {self.shipped} (txid {self.txid})" if self.shipped else "first copy"
        errors = f"{self.errors} errors, last: {self.last_error}" if self.errors else "0 errors"
        text = f"Replica {shipped}; {errors}; {self.short}; Ctrl-C stops"  # state first
        width = shutil.get_terminal_size((100, 24)).columns
        click.echo("\r\x1b[2K" + text[: width - 1], err=True, nl=False)

    def end(self, message: str) -> None:
        if self.tty:
            click.echo("", err=True)
        click.echo(message, err=True)


def _run(
    exe: str,
    config: Path,
    db: Path,
    url: str,
    sync_interval: float,
    created: Path | None,
    log: Path | None,
) -> None:
    args = [exe, "replicate", "-config", str(config), "-no-expand-env", "-log-level", "debug"]
    status = _Status(db, url, sync_interval)
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        umask=0o077,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # a service stop ends as Ctrl-C does
    status.draw()
    tail: list[str] = []
    assert proc.stdout is not None
    raw = None
    if log is not None:
        fd = os.open(log.expanduser(), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        raw = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
    try:
        for line in proc.stdout:
            tail = [*tail[-50:], line]
            if raw is not None:
                raw.write(line)
            status.feed(line)
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)  # Litestream ships what is left, then stops
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        status.end(f"sma-log: replication stopped (last shipped: {status.shipped or 'nothing'})")
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
        if raw is not None:
            raw.close()
    reason = litestream.error_line("".join(tail))
    if status.shipped is None and created is not None:
        shutil.rmtree(created, ignore_errors=True)  # a refused start leaves nothing
    if status.tty:
        click.echo("", err=True)
    raise CommandRefused(f"Litestream stopped (exit code {code}): {reason}")


# ------------------------------------------------------------------ restore
def _parse_time(text: str, tz: str) -> str:
    """``--at``: an ISO 8601 time (site local time without an offset), as UTC text."""
    import pendulum

    try:
        value = pendulum.parse(text.strip(), tz=tz, strict=False)
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError):
        value = None
    if not isinstance(value, pendulum.DateTime):
        raise CommandRefused(
            f"--at: {text!r} is not a time such as 2026-11-30T14:05 or 2026-11-30T13:05:00Z"
        )
    return str(value.in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))


@click.command("restore")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="REPLICA",
    help="The replica: a folder written by sma-log replicate, or its URL.",
)
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The new database file (never overwritten; written 0600).",
)
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Restore the newest copy shipped to the replica before TIME (ISO 8601; site local "
    "time unless it ends in Z or an offset). Whole shipped files only: it may be older than "
    "TIME, never newer; the output says which. Default: the latest copy.",
)
@click.pass_obj
def restore(opts: Options, source: str, to: Path, at: str | None) -> None:
    """Restore a copy of the database from a replica into a NEW file, then check it.

    The copy is written to a private temporary file, judged by sma-log's own checks
    (an sma-log database, SQLite's integrity check, the schema version, the report's
    kept figures) and only then moved into place, 0600. An existing file is never
    overwritten. Prints what the copy holds: counts and the last event's time.
    """
    tz = site_timezone(opts.settings)
    try:
        target = to.expanduser().absolute()
    except RuntimeError:
        raise CommandRefused(f"{to}: cannot expand '~' (no such user or no home)") from None
    _refuse_existing(target)
    timestamp = _parse_time(at, tz) if at else None
    url = litestream.replica_url(source, create=False)
    litestream.check_replica_has_backup(url)
    exe = litestream.binary()
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.restoring-", dir=target.parent))
    try:
        restored_file = scratch / "restored.db"
        point = litestream.restore(exe, url, restored_file, timestamp)
        held = _checked(restored_file, source)
        os.chmod(restored_file, 0o600)
        _link_into_place(restored_file, target)
        # Litestream's record of a lost file that lived here would mislead the next
        # sma-log replicate of this one: it is not this file's.
        shutil.rmtree(litestream.meta_folder(target), ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    took = time.monotonic() - started
    _print_restored(target, source, held, at, tz, took, point)


def _refuse_existing(target: Path) -> None:
    for path in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        if os.path.lexists(path):
            raise CommandRefused(
                f"{path}: already exists; restore never overwrites a file: choose a new name"
            )
    if not target.parent.is_dir():
        raise CommandRefused(f"{target.parent}: no such folder")
    if not os.access(target.parent, os.W_OK):
        raise CommandRefused(f"{target.parent}: the folder is read-only")


def _checked(path: Path, label: str) -> Any:
    from ..storage.restored import check_restored

    return check_restored(path, label)


def _link_into_place(tmp: Path, target: Path) -> None:
    """Move the checked copy to ``target`` in one step, never replacing a file that
    appeared meanwhile."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise CommandRefused(
            f"{target}: already exists; restore never overwrites a file: choose a new name"
        ) from None
    except OSError:
        if target.exists():
            raise CommandRefused(f"{target}: already exists; choose a new name") from None
        os.replace(tmp, target)  # no hard links here (FAT, some network drives)
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _local(text: str | None, tz: str) -> str:
    if not text:
        return "none"
    from ..domain.clock import from_text

    return str(from_text(text).in_timezone(tz).format("YYYY-MM-DD HH:mm:ss zz"))


def _position(point: litestream.RestorePoint, tz: str) -> str:
    shipped = f", shipped {_shipped(point.shipped_at, tz)}" if point.shipped_at else ""
    return f"txid {point.txid}{shipped}"


def _shipped(text: str, tz: str) -> str:
    """A Litestream time (UTC ``…Z``, to the second) in the site's time zone."""
    import pendulum

    try:
        value = pendulum.parse(text)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return text
    if not isinstance(value, pendulum.DateTime):
        return text
    return str(value.in_timezone(tz).format("YYYY-MM-DD HH:mm:ss zz"))


def _print_restored(
    target: Path,
    source: str,
    held: Any,
    at: str | None,
    tz: str,
    took: float,
    point: litestream.RestorePoint,
) -> None:
    from ..domain.text import visible

    counts = ", ".join(f"{n:,} {table.replace('_', ' ')}" for table, n in held.counts.items())
    report = "report figures ok" if held.report_checked else "report figures rebuilt on first open"
    click.echo(
        visible(
            f"Restored {source} ({'as of ' + at if at else 'latest'}) to {target} (0600) "
            f"in {took:.1f} s"
        )
    )
    if point.txid:
        # Litestream restores whole shipped files: with --at, the newest state shipped
        # before that time, which may be older than it (never newer).
        what = f"the last copy shipped before {at}" if at else "the latest copy"
        click.echo(visible(f"  restored to: {what}: {_position(point, tz)}"))
    click.echo(f"  holds: {counts}")
    click.echo(f"  last event: {_local(held.last_event_at, tz)}")
    click.echo(f"  checks: integrity ok, schema {held.schema_version}, {report}")


# ------------------------------------------------------------------ pull
@click.command("pull")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--prefer-incoming",
    is_flag=True,
    help="Where a record differs here, take the device's values (audited, as import does).",
)
@click.pass_obj
def pull(opts: Options, folder: Path, prefer_incoming: bool) -> None:
    """Merge every device's latest replica in FOLDER into the database.

    FOLDER holds one replica folder per device (each written by sma-log replicate
    --to FOLDER/DEVICE). Each is restored into a private temporary file and checked as
    sma-log restore checks it; if any is refused, nothing is merged. Then each is
    merged as sma-log import merges a file: validated, in short batches, idempotent
    (pulling twice adds nothing); conflicts are reported as import reports them.

    Exit codes: 0 merged; 3 merged, with conflicts or refused records left out; 2 a
    replica was refused: nothing changed.
    """
    from ..importer import ImportRefused, import_file, open_source
    from ..storage.store import Store
    from .importcmd import _report
    from .progress import progress_bar

    devices = _devices(folder)
    exe = litestream.binary()
    tz = site_timezone(opts.settings)
    scratch = Path(tempfile.mkdtemp(prefix="sma-log-pull-"))
    left = 0
    try:
        copies = []
        for name, sub in devices:  # all restored and checked before anything is merged
            url = litestream.replica_url(str(sub), create=False)
            copy = scratch / f"{name}.db"
            point = litestream.restore(exe, url, copy, None)
            _checked(copy, str(sub))
            copies.append((name, sub, url, point, copy))
        target = opts.db_path
        with Store.open(target, opts.user) as store:
            for name, sub, url, point, copy in copies:
                # The import names the device and its replica, never the temporary copy
                # (gone when pull ends): in its audit log provenance and what it prints.
                label = f"{name} ({sub})"
                details = {
                    "device": name,
                    "replica": url,
                    "restored_txid": point.txid or None,
                    "restored_shipped_at": point.shipped_at or None,
                }
                try:
                    source = open_source(copy, target)
                except ImportRefused as exc:
                    raise ImportRefused(str(exc).replace(str(copy), label)) from None
                try:
                    with progress_bar(f"Pulling {name}", unit="records") as bar:
                        result = import_file(
                            store,
                            copy,
                            prefer_incoming=prefer_incoming,
                            source=source,
                            source_label=label,
                            source_details=details,
                            progress=bar.stage if bar.enabled else None,
                        )
                except ImportRefused as exc:
                    raise ImportRefused(str(exc).replace(str(copy), label)) from None
                finally:
                    source.close()
                _report(result, target)
                if point.txid:
                    click.echo(f"  restored from the replica: {_position(point, tz)}")
                left += len(result.conflicts) + len(result.refused)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if left:
        click.echo(
            f"sma-log: {left} conflict(s) or refused record(s) left out (exit code "
            f"{EXIT_CONFLICTS})",
            err=True,
        )
        click.get_current_context().exit(EXIT_CONFLICTS)


def _devices(folder: Path) -> list[tuple[str, Path]]:
    folder = folder.expanduser()
    if not folder.exists():
        raise CommandRefused(f"{folder}: no such folder")
    if not folder.is_dir():
        raise CommandRefused(f"{folder}: not a folder of replicas")
    try:
        subs = sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError as exc:
        raise CommandRefused(f"{folder}: cannot be read ({exc.strerror or exc})") from None
    found = [(p.name, p) for p in subs if (p / "ltx").is_dir()]
    from ..domain.text import visible

    for p in subs:
        if not (p / "ltx").is_dir():  # a misnamed or never-started device: said, not hidden
            click.echo(visible(f"skipped {p.name}: no replica in it (no ltx folder)"), err=True)
    if not found:
        raise CommandRefused(
            f"{folder}: no replicas here (one folder per device, each written by "
            "sma-log replicate --to FOLDER/DEVICE)"
        )
    return found


__all__ = ["EXIT_REFUSED", "pull", "replicate", "restore"]
