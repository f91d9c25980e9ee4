"""The command line: ``sma-log`` starts the bedside app; subcommands work headless.

Imports are lazy on purpose: ``sma-log --help`` and ``--version`` must not load
Textual, sqlite-utils or pendulum (a test checks ``sys.modules``). Every error a user
can cause (a refused database, a bad value) ends as ONE line on stderr,
``sma-log: error: ...``, with exit code 2 — never a traceback. Bad options are
click's own usage errors (also exit code 2).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from . import __version__
from .domain.fields import ValidationError
from .storage.errors import StorageError

EXIT_REFUSED = 2
DEMO_PREFIX = "sma-log-demo-"


class CommandRefused(Exception):
    """A refusal of a headless command: one line, exit code 2, nothing changed."""


def _user_error(exc: BaseException) -> str | None:
    """The one line to show for an error the user can act on, or None for a bug."""
    if isinstance(exc, (StorageError, ValidationError, CommandRefused)):
        return str(exc)
    timeline = sys.modules.get("sma_log.domain.timeline")
    if timeline is not None and isinstance(exc, timeline.RuleError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


class _Group(click.Group):
    """A group that turns user errors from any command into one line and exit 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Click's usage errors as ONE line too (click prints three), exit code 2."""
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
            # Without standalone mode click returns ctx.exit()'s code instead of exiting.
            sys.exit(result if isinstance(result, int) else 0)
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see {exc.ctx.command_path} --help)"
            click.echo(f"sma-log: error: {' '.join(exc.format_message().split())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"sma-log: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("sma-log: aborted", err=True)
            sys.exit(1)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (``sma-log followups | head``): stop quietly, as a
            # command killed by SIGPIPE would, without a second error at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(128 + 13)
        except Exception as exc:
            message = _user_error(exc)
            if message is None:
                raise
            click.echo(f"sma-log: error: {' '.join(message.split())}", err=True)
            ctx.exit(EXIT_REFUSED)


class _Options:
    def __init__(self, db: Path | None, user: str | None, demo: bool) -> None:
        self.db_option = db
        self.user_option = user
        self.demo = demo
        self.demo_path: Path | None = None
        self._settings: Any = None

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from .config import Settings

            self._settings = Settings.load()
        return self._settings

    @property
    def db_path(self) -> Path:
        if self.demo_path is not None:
            return self.demo_path
        if self.db_option is not None:
            return self.db_option.expanduser()
        from .config import default_db_path

        return default_db_path()  # SMA_LOG_DB, else the user data folder

    @property
    def user(self) -> str:
        if self.user_option:
            return self.user_option
        if self.settings.operator:
            return str(self.settings.operator)
        from .storage.store import default_user

        return default_user()


@click.group(cls=_Group, invoke_without_command=True, context_settings={"max_content_width": 100})
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Database file (default: $SMA_LOG_DB, else sma-log.db in the user data folder; "
    "created on first use, permissions 0600).",
)
@click.option(
    "--user",
    metavar="NAME",
    default=None,
    help="Operator name for the audit log (default: settings, else the login name).",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Use a throw-away database filled with sample patients and procedures; "
    "it is deleted on exit.",
)
@click.version_option(__version__, "--version", prog_name="sma-log", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, db: Path | None, user: str | None, demo: bool) -> None:
    """Bedside log for ultrasound-guided intrathecal nusinersen injections.

    Without a command, starts the bedside app (a terminal UI) on the database.
    """
    if demo and db is not None:
        raise click.UsageError("--demo and --db cannot be used together", ctx=ctx)
    opts = _Options(db, user, demo)
    ctx.obj = opts
    if demo:
        import shutil
        import tempfile

        from .demo import demo_database

        _remove_stale_demo_folders()
        folder = tempfile.mkdtemp(prefix=f"{DEMO_PREFIX}{os.getpid()}-")
        ctx.call_on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
        opts.demo_path = demo_database(folder)
        click.echo(
            f"sma-log: demo mode: a throw-away database with sample data at {opts.demo_path}; "
            "nothing you do is kept (it is deleted on exit).",
            err=True,
        )
    if ctx.invoked_subcommand is None:
        _run_app(ctx, opts)


def _remove_stale_demo_folders() -> None:
    """Delete demo folders left by earlier ``--demo`` runs that were killed.

    A folder is named after the process that made it; it is removed only if it
    belongs to this user and that process is gone.
    """
    import shutil
    import tempfile

    base = Path(tempfile.gettempdir())
    for folder in base.glob(f"{DEMO_PREFIX}*"):
        pid_text = folder.name[len(DEMO_PREFIX) :].split("-", 1)[0]
        try:
            pid = int(pid_text)
            if folder.stat().st_uid != os.getuid() or pid == os.getpid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):
            continue


def _run_app(ctx: click.Context, opts: _Options) -> None:
    path = opts.db_path
    if path.exists():
        # Refuse a foreign/newer/damaged file here, from its header alone (nothing written),
        # so the shell gets exit code 2; the app shows its own message for later problems.
        from .storage.db import inspect_header

        inspect_header(path)
    try:
        from .ui.app import create_app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("sma_log.ui"):
            raise click.ClickException(
                "the terminal interface is not part of this build (sma_log.ui.app is missing)"
            ) from None
        raise
    # In demo mode settings changed in the app stay in the throw-away folder too.
    settings_path = path.parent / "settings.json" if opts.demo else None
    app = create_app(
        path, user=opts.user, settings=opts.settings, demo=opts.demo, settings_path=settings_path
    )
    app.run()
    if opts.demo:
        click.echo("sma-log: demo database deleted.", err=True)
    ctx.exit(app.return_code or 0)


@main.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--procedures",
    "-n",
    type=click.IntRange(1, 10_000_000),
    default=60,
    show_default=True,
    help="How many procedures (one of them still open).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option(
    "--now",
    metavar="INSTANT",
    default=None,
    help="Pretend it is this UTC instant (ISO 8601, e.g. 2026-03-27T09:00:00Z); "
    "with the same seed the file's contents are then identical. Default: now.",
)
@click.option("--force", is_flag=True, help="Replace PATH if it is an earlier demo database.")
def demo(path: Path, procedures: int, seed: int, now: str | None, force: bool) -> None:
    """Write a demo database to PATH (headless; for trying the app and for benchmarks).

    Sample patients DEMO-001…, ended procedures with attempts and scores, some scores
    pending and one procedure still open. An existing PATH is refused unless --force
    is given and it is itself a demo database.
    """
    from .demo import write_demo

    when = _parse_instant(now) if now else None
    result = write_demo(path, procedures=procedures, seed=seed, now=when, force=force)
    click.echo(
        f"Wrote demo database {path}: {result['patients']} patients, "
        f"{result['procedures']} procedures (1 open, {result['pending_scores']} scores "
        f"pending), {result['attempts']} attempts, {result['events']} events "
        f"in {result['seconds']:.1f} s."
    )


def _parse_instant(text: str) -> Any:
    from datetime import datetime

    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 instant such as 2026-03-27T09:00:00Z",
            param_hint="--now",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


@main.command()
@click.pass_obj
def info(opts: _Options) -> None:
    """Show the database file: path, schema version, counts, SQLite version, permissions.

    Opens the file read-only; a missing file is not created.
    """
    import sqlite3
    import stat

    from .storage.schema import SCHEMA_VERSION
    from .storage.store import Store

    path = opts.db_path
    with Store.open(path, opts.user, create=False, readonly=True) as store:
        version = store.conn.execute("PRAGMA user_version").fetchone()[0]
        journal = store.conn.execute("PRAGMA journal_mode").fetchone()[0]
        meta = dict(store.conn.execute("SELECT key, value FROM meta").fetchall())
        counts = store.counts()
        open_n = store.conn.execute(
            "SELECT count(*) FROM procedures WHERE status = 'open'"
        ).fetchone()[0]
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    perm = f"{mode:04o} ({stat.filemode(st.st_mode)})"
    if mode & 0o077:
        perm += "  WARNING: readable by others; run: chmod 600 " + str(path)
    rows = [
        ("database", str(path.resolve())),
        ("schema version", f"{version} (this sma-log {__version__} reads up to {SCHEMA_VERSION})"),
        ("journal mode", journal),
        ("SQLite library", f"{sqlite3.sqlite_version} (Python {sys.version.split()[0]})"),
        ("created by", f"sma-log {meta.get('created_by', '?')} at {meta.get('created_at', '?')}"),
        (
            "last opened by",
            f"sma-log {meta.get('last_opened_by', '?')}, SQLite {meta.get('sqlite_version', '?')}",
        ),
        ("permissions", perm),
        ("size", _size(path)),
    ]
    if "demo" in meta:
        rows.append(("demo data", meta["demo"]))
    rows += [(table, str(n)) for table, n in counts.items()]
    rows.append(("open procedures", str(open_n)))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key + ':':<{width + 2}}{value}")


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if os.path.exists(p))
    for unit in ("bytes", "KB", "MB", "GB"):
        if total < 1024 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "bytes" else f"{total:.1f} {unit}"
        total /= 1024
    return str(total)


# ---------------------------------------------------------------- follow-ups (headless)
STATUS_CHOICES = ("overdue", "due", "upcoming", "missed", "all")
STATUS_WORDS = {
    "overdue": "overdue",
    "due": "due now",
    "upcoming": "upcoming",
    "missed": "missed",
    "done": "done",
    "unreachable": "not reachable",
    "declined": "declined",
}
KIND_WORDS = {"score_5min": "5-min score", "day3": "72-h call"}
ICS_PRODID = "-//sma-log//follow-ups//EN"
ICS_DOMAIN = "sma-log"
#: Length of a follow-up's calendar event: the 5-minute score is a moment at the end
#: of the procedure, the 72-hour call a 30-minute slot at its due time.
ICS_MINUTES = {"score_5min": 15, "day3": 30}


def _open_for_reading(path: Path, user: str) -> Any:
    """The database opened read-only if possible; a missing file is never created.

    A file of an older schema cannot be upgraded read-only: it is opened normally
    (which upgrades it, with a backup, as the app would). If SQLite refuses the
    read-only open of an existing file, the normal open is tried (it refuses a foreign
    or damaged file in the same words).
    """
    from .storage.errors import DatabaseRefused
    from .storage.schema import SCHEMA_VERSION
    from .storage.store import Store

    try:
        store = Store.open(path, user, create=False, readonly=True)
    except DatabaseRefused:
        if not path.exists():
            raise
        return Store.open(path, user, create=False)
    version = store.conn.execute("PRAGMA user_version").fetchone()[0]
    if version < SCHEMA_VERSION:
        store.close()
        return Store.open(path, user, create=False)
    return store


def _site_timezone(settings: Any) -> str:
    from .domain import schedule

    name = settings.tz_name()
    problem = schedule.validate_timezone(name)
    if problem:
        raise CommandRefused(f"settings: {problem}; fix it with: sma-log settings --timezone NAME")
    return str(name)


def _utc_text(value: Any) -> str | None:
    """The stored UTC form as ISO 8601 with a Z (seconds, no microseconds)."""
    if value is None:
        return None
    from .domain.clock import from_text

    dt = from_text(value) if isinstance(value, str) else value
    return str(dt.in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))


def _local_iso(value: Any, tz: str) -> str | None:
    if value is None:
        return None
    from .domain.clock import from_text

    dt = from_text(value) if isinstance(value, str) else value
    return str(dt.in_timezone(tz).isoformat(timespec="seconds"))


def _queue_rows(
    store: Any, settings: Any, tz: str, statuses: tuple[str, ...] | None
) -> list[tuple[dict[str, Any], Any]]:
    """The queue: (the JSON object, the QueueItem) per follow-up, in queue order."""
    from .domain import dosing, schedule

    store.set_window(settings.window_before_hours, settings.window_after_hours)
    now = store.now()
    today = now.in_timezone(tz).date()
    items = store.followup_queue(statuses=statuses, now=now)
    next_doses: dict[str, Any] = {}
    out = []
    for item in items:
        row = item.row
        pid = row["patient_id"]
        if pid not in next_doses:
            nd = store.next_dose(pid, settings.label, tz, today)
            next_doses[pid] = None
            if nd is not None:
                next_doses[pid] = {
                    "due_date": nd.due.isoformat(),
                    "regimen": nd.regimen,
                    "reason": nd.reason,
                    "warnings": list(nd.warnings),
                    "missed_rule": nd.missed_rule,
                    "text": dosing.describe(nd, today),
                }
        window = store.windows.get(row["kind"], schedule.default_window(row["kind"]))
        opens = item.due - window.before
        closes = item.due + window.after
        out.append(
            (
                {
                    "id": item.id,
                    "kind": row["kind"],
                    "what": KIND_WORDS.get(row["kind"], row["kind"]),
                    "status": item.status,
                    "status_words": STATUS_WORDS.get(item.status, item.status),
                    "study_code": row["study_code"],
                    "patient_id": pid,
                    "procedure_id": row["procedure_id"],
                    "procedure_ended_utc": _utc_text(row["ended_at"]),
                    "procedure_ended_local": _local_iso(row["ended_at"], tz),
                    "operator": row["operator"],
                    "due_utc": _utc_text(item.due),
                    "due_local": _local_iso(item.due, tz),
                    "window_opens_utc": _utc_text(opens),
                    "window_closes_utc": _utc_text(closes),
                    "relative": schedule.relative_phrase(item.due, now, settings.locale),
                    "contact_attempts": int(row["contact_attempts_n"] or 0),
                    "last_contact_utc": _utc_text(row["last_contact_at"]),
                    "last_contact_local": _local_iso(row["last_contact_at"], tz),
                    "timezone": tz,
                    "next_dose": next_doses[pid],
                },
                item,
            )
        )
    return out


def _text_table(rows: list[tuple[dict[str, Any], Any]], tz: str, locale: str) -> list[str]:
    from .domain import schedule
    from .domain.clock import from_text, now_utc

    this_year = schedule.to_local(now_utc(), tz).year

    header = (
        "Status",
        "Study code",
        "Procedure",
        "Operator",
        "What",
        f"Due ({tz})",
        "When",
        "Calls",
        "Next dose",
    )
    table = [header]
    for r, item in rows:
        ended = from_text(item.row["ended_at"])
        table.append(
            (
                r["status_words"],
                r["study_code"],
                schedule.format_local(ended, tz, "D MMM YYYY", locale),
                r["operator"] or "—",
                r["what"],
                schedule.format_local(
                    item.due,
                    tz,
                    "ddd D MMM HH:mm" if item.due.year == this_year else "ddd D MMM YYYY HH:mm",
                    locale,
                ),
                r["relative"],
                str(r["contact_attempts"]),
                r["next_dose"]["text"] if r["next_dose"] else "—",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]


@main.command()
@click.option(
    "--status",
    type=click.Choice(STATUS_CHOICES),
    default="all",
    show_default=True,
    help="Only follow-ups in this state (all: every open follow-up).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="An aligned table, or JSON for scripts.",
)
@click.option(
    "--ics",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the follow-ups and every patient's next dose as an iCalendar file "
    "instead (permissions 0600).",
)
@click.option("--force", is_flag=True, help="With --ics: replace PATH if it exists.")
@click.pass_obj
def followups(opts: _Options, status: str, fmt: str, ics: Path | None, force: bool) -> None:
    """The follow-up queue: overdue first, then due now, upcoming and missed.

    \b
    Open follow-ups only (the 5-minute score and the 72-hour call of each ended
    procedure); "missed" ones are open past their window (late entry is still
    allowed). Statuses use the follow-up window of the settings; times are shown in
    the settings' time zone and locale (see: sma-log settings). The database is opened
    read-only; a missing file is not created. Exit code 0, also when the queue is empty.

    \b
    --format json prints a list of objects, one per follow-up, in queue order, with
    these keys (times as UTC "...Z" and local ISO 8601 with offset):
      id, kind (score_5min | day3), what, status (overdue | due | upcoming | missed),
      status_words, study_code, patient_id, procedure_id, procedure_ended_utc,
      procedure_ended_local, operator, due_utc, due_local, window_opens_utc,
      window_closes_utc, relative ("due in 5 hours"), contact_attempts,
      last_contact_utc, last_contact_local, timezone, next_dose (null or {due_date,
      regimen, reason, warnings, missed_rule, text}).

    \b
    --ics PATH writes one event per open follow-up (UID followup-<id>@sma-log, at its
    due time) and one all-day event per patient's next dose (UID
    next-dose-<patient id>@sma-log), so importing again updates the same events. Only
    the study code identifies a patient: no names, record numbers or notes. An
    existing PATH is refused unless --force is given.
    """
    if force and ics is None:
        raise click.UsageError("--force only applies with --ics")
    settings = opts.settings
    tz = _site_timezone(settings)
    statuses = None if status == "all" else (status,)
    if ics is not None and ics.exists() and not force:
        raise CommandRefused(f"{ics}: already exists; choose another path or use --force")
    with _open_for_reading(opts.db_path, opts.user) as store:
        rows = _queue_rows(store, settings, tz, statuses)
        if ics is not None:
            data, n_doses = _calendar(store, rows, settings, tz)
    if ics is not None:
        _write_private(ics, data, force)
        click.echo(
            f"Wrote {ics}: {len(rows)} follow-up(s) and {n_doses} next dose(s) "
            f"as calendar events (times in UTC; shown in {tz} by your calendar)."
        )
        return
    if fmt == "json":
        import json

        click.echo(json.dumps([r for r, _ in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        which = "open follow-ups" if status == "all" else f"follow-ups {STATUS_WORDS[status]}"
        click.echo(f"No {which}.")
        return
    for line in _text_table(rows, tz, settings.locale):
        click.echo(line)


def _revision(store: Any, records: list[tuple[str, str]], fallback: str) -> tuple[int, Any]:
    """How often these records changed (audited updates) and when last: SEQUENCE and
    DTSTAMP of a calendar event. The audit log is append-only, so both only grow, and
    they stay the same from one export to the next while nothing changes."""
    from .domain.clock import from_text

    where = " OR ".join("(table_name = ? AND record_id = ?)" for _ in records)
    params = [v for pair in records for v in pair]
    n, last = store.conn.execute(
        f"SELECT count(*) FILTER (WHERE action != 'insert'), max(at) FROM audit_log WHERE {where}",
        params,
    ).fetchone()
    return int(n or 0), from_text(last or fallback)


def _utc_datetime(value: Any) -> Any:
    """A stdlib datetime in UTC (so the calendar file says ...Z, not TZID=UTC)."""
    from datetime import datetime

    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _calendar(
    store: Any, rows: list[tuple[dict[str, Any], Any]], settings: Any, tz: str
) -> tuple[bytes, int]:
    """The iCalendar file (bytes) and how many next-dose events it holds."""
    from datetime import date, timedelta

    import icalendar
    import pendulum

    from .domain import schedule, vocab
    from .domain.clock import from_text

    regimens = dict(vocab.REGIMENS)
    when = "ddd D MMM YYYY HH:mm"
    cal = icalendar.Calendar()
    cal.add("prodid", ICS_PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "sma-log follow-ups")
    for r, item in rows:
        row = item.row
        n, last = _revision(
            store,
            [
                ("followups", r["id"]),
                ("procedures", r["procedure_id"]),
                ("patients", r["patient_id"]),
            ],
            row["created_at"],
        )
        due = from_text(row["due_at"])
        ended = from_text(row["ended_at"])
        ev = icalendar.Event()
        ev.add("uid", f"followup-{r['id']}@{ICS_DOMAIN}")
        ev.add("dtstamp", _utc_datetime(last))
        ev.add("last-modified", _utc_datetime(last))
        ev.add("created", _utc_datetime(from_text(row["created_at"])))
        ev.add("sequence", n)
        ev.add("dtstart", _utc_datetime(due))
        ev.add("duration", timedelta(minutes=ICS_MINUTES.get(row["kind"], 30)))
        ev.add("summary", f"{r['what']} — {r['study_code']}")
        lines = [
            f"{KIND_WORDS.get(row['kind'], row['kind'])} for {r['study_code']}",
            "Procedure: " + schedule.format_local(ended, tz, when, settings.locale),
            f"Operator: {row['operator'] or '—'}",
            "Due: " + schedule.format_local(due, tz, when, settings.locale) + f" ({tz})",
            f"Calls without answer so far: {int(row['contact_attempts_n'] or 0)}",
        ]
        ev.add("description", "\n".join(lines))
        ev.add("categories", ["sma-log", r["what"]])
        ev.add("transp", "TRANSPARENT")
        cal.add_component(ev)
    doses = 0
    zone = pendulum.timezone(tz)  # parsed once, not once per patient
    today = store.now().in_timezone(zone).date()
    patients = store.query("SELECT id, study_code, created_at FROM patients ORDER BY study_code")
    for p in patients:
        nd = store.next_dose(p["id"], settings.label, zone, today)
        if nd is None:
            continue
        procs = store.query("SELECT id FROM procedures WHERE patient_id = ?", (p["id"],))
        n, last = _revision(
            store,
            [("patients", p["id"]), *[("procedures", q["id"]) for q in procs]],
            p["created_at"],
        )
        due_day = date(nd.due.year, nd.due.month, nd.due.day)
        ev = icalendar.Event()
        ev.add("uid", f"next-dose-{p['id']}@{ICS_DOMAIN}")
        ev.add("dtstamp", _utc_datetime(last))
        ev.add("last-modified", _utc_datetime(last))
        # A new procedure (an insert) moves the next dose too: count those as changes.
        ev.add("sequence", n + len(procs))
        ev.add("dtstart", due_day)
        ev.add("dtend", due_day + timedelta(days=1))
        ev.add("summary", f"Next nusinersen dose — {p['study_code']}")
        lines = [
            f"{regimens.get(nd.regimen, nd.regimen)} for {p['study_code']}",
            f"Why: {nd.reason}",
            f"Dosing label: {settings.label.upper()}",
            *[f"Warning: {w}" for w in nd.warnings],
        ]
        ev.add("description", "\n".join(lines))
        ev.add("categories", ["sma-log", "Next dose"])
        ev.add("transp", "TRANSPARENT")
        cal.add_component(ev)
        doses += 1
    return cal.to_ical(), doses


def _write_private(path: Path, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` as a new 0600 file, complete or not at all.

    Written beside ``path`` and moved into place; without ``force`` an existing
    ``path`` is never replaced (even one that appeared meanwhile).
    """
    import contextlib

    path = path.expanduser()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise CommandRefused(
                    f"{path}: already exists; choose another path or use --force"
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# ---------------------------------------------------------------- settings
@main.command("settings")
@click.option(
    "--timezone",
    metavar="NAME",
    help="Site time zone, an IANA name such as Europe/Rome ('system' for the computer's own).",
)
@click.option("--locale", metavar="L", help="Language of dates and phrases, e.g. en, it, de.")
@click.option("--label", type=click.Choice(("eu", "us")), help="Dosing label for the next dose.")
@click.option("--operator", metavar="NAME", help="Your name for the audit log ('' to clear).")
@click.option(
    "--window-before",
    type=click.FloatRange(0, 72),
    metavar="H",
    help="Hours before the 72-hour mark a call counts as due (0-72).",
)
@click.option(
    "--window-after",
    type=click.FloatRange(0, 168),
    metavar="H",
    help="Hours after the 72-hour mark a call is overdue before it is missed (0-168).",
)
@click.pass_obj
def settings_command(
    opts: _Options,
    timezone: str | None,
    locale: str | None,
    label: str | None,
    operator: str | None,
    window_before: float | None,
    window_after: float | None,
) -> None:
    """Show the settings, or change them (only the options given; the rest is kept).

    The file is $SMA_LOG_CONFIG, else settings.json in the user config folder. A bad
    value is refused with one line and exit code 2, and the file is left unchanged.
    """
    from dataclasses import replace

    from .config import config_path
    from .domain import schedule

    current = opts.settings
    changes: dict[str, Any] = {}
    if timezone is not None:
        name = timezone.strip()
        if name.lower() in ("", "system", "local"):
            changes["timezone"] = ""
        else:
            problem = schedule.validate_timezone(name)
            if problem:
                raise CommandRefused(f"--timezone: {problem}")
            changes["timezone"] = name
    if locale is not None:
        changes["locale"] = _check_locale(locale)
    if label is not None:
        changes["label"] = label
    if operator is not None:
        name = " ".join(operator.split())
        if len(name) > 100:
            raise CommandRefused("--operator: at most 100 characters")
        changes["operator"] = name
    if window_before is not None:
        changes["window_before_hours"] = float(window_before)
    if window_after is not None:
        changes["window_after_hours"] = float(window_after)
    path = config_path()
    if changes:
        current = replace(current, **changes)
        current.save(path)
        opts._settings = current
        click.echo(f"Saved {path}")
    _show_settings(current, path)


def _check_locale(value: str) -> str:
    from pendulum.locales.locale import Locale

    from .domain import schedule

    wanted = value.strip()
    if not wanted:
        raise CommandRefused("--locale: give a locale such as en, it or de")
    resolved = schedule.resolve_locale(wanted)
    if resolved == "en" and Locale.normalize_locale(wanted).split("_")[0] != "en":
        raise CommandRefused(f"--locale: unknown locale {wanted!r} (e.g. en, it, de, fr, es)")
    return resolved


def _show_settings(settings: Any, path: Path) -> None:
    from .domain import schedule

    tz = settings.timezone
    if tz:
        problem = schedule.validate_timezone(tz)
        tz_text = tz + (f"  WARNING: {problem}" if problem else "")
    else:
        tz_text = f"(system) {settings.tz_name()}"
    rows = [
        ("settings file", str(path) + ("" if path.exists() else " (not written yet: defaults)")),
        ("operator", settings.operator or "(login name)"),
        ("timezone", tz_text),
        ("locale", settings.locale),
        ("label", settings.label),
        ("window before", f"{settings.window_before_hours:g} h"),
        ("window after", f"{settings.window_after_hours:g} h"),
        ("theme", settings.theme),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key + ':':<{width + 2}}{value}")
