"""The command line: ``sma-log`` starts the bedside app; subcommands work headless.

Imports are lazy on purpose: ``sma-log --help`` and ``--version`` must not load
Textual, sqlite-utils or pendulum (a test checks ``sys.modules``). Every error a user
can cause (a refused database, a bad value) ends as ONE line on stderr,
``sma-log: error: ...``, with exit code 2 — never a traceback. Bad options are
click's own usage errors (also exit code 2).
"""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .commands.common import EXIT_REFUSED, CommandRefused, Options, format_option
from .storage.errors import StorageError

if TYPE_CHECKING:
    from .storage.store import Store

DEMO_PREFIX = "sma-log-demo-"


def _user_error(exc: BaseException) -> str | None:
    """The one line to show for an error the user can act on, or None for a bug."""
    if isinstance(exc, (StorageError, CommandRefused)):
        return str(exc)
    fields = sys.modules.get("sma_log.domain.fields")  # imported by whatever raised it
    if fields is not None and isinstance(exc, fields.ValidationError):
        return str(exc)
    config = sys.modules.get("sma_log.config")
    if config is not None and isinstance(exc, config.SettingsRefused):
        return str(exc)  # an unusable settings file: never replaced by defaults
    timeline = sys.modules.get("sma_log.domain.timeline")
    if timeline is not None and isinstance(exc, timeline.RuleError):
        return str(exc)
    if isinstance(exc, RuntimeError) and "home directory" in str(exc):
        # pathlib's expanduser() of "~name" for no known user, or with no home folder
        return "cannot expand '~' in a path (no such user or no home folder)"
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


def _one_line(message: str) -> str:
    """One line without control characters: a value or path the user typed, or a cell
    of the file, may hold terminal escapes (e.g. an OSC title sequence) that must not
    reach the terminal; :func:`~sma_log.domain.text.visible` shows them escaped."""
    from .domain.text import visible

    return visible(" ".join(re.split(r"[ \t\r\n]+", message.strip())))


class _Group(click.Group):
    """A group that turns user errors from any command into one line and exit 2."""

    # Subcommands of sma_log.commands are imported when used (LAZY_COMMANDS, below).
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            import importlib

            module, attribute, _ = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"sma_log.commands.{module}"), attribute)
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's command list; a command not imported yet shows the short help of
        :data:`LAZY_COMMANDS` (the text click would take from its help)."""
        from click.utils import make_default_short_help

        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = super().get_command(ctx, name)
            if loaded is None:
                rows.append((name, make_default_short_help(LAZY_COMMANDS[name][2], limit)))
            elif not loaded.hidden:
                rows.append((name, loaded.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, *args: Any, **kwargs: Any) -> Any:
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
            click.echo(f"sma-log: error: {_one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"sma-log: error: {_one_line(exc.format_message())}", err=True)
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
            click.echo(f"sma-log: error: {_one_line(message)}", err=True)
            ctx.exit(EXIT_REFUSED)


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
    opts = Options(db, user, demo)
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


def _run_app(ctx: click.Context, opts: Options) -> None:
    path = opts.db_path
    if path.exists():
        # Refuse a foreign/newer/damaged file here, from its header alone (nothing written),
        # so the shell gets exit code 2; the app shows its own message for later problems.
        from .storage.db import inspect_header

        inspect_header(path)
    from .ui.app import create_app

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
    from .commands.progress import progress_bar

    with progress_bar("Writing demo", total=procedures, unit="procedures") as bar:
        result = write_demo(
            path, procedures=procedures, seed=seed, now=when, force=force, progress=bar.update_to
        )
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
@click.option(
    "--check",
    is_flag=True,
    help="Also run SQLite's integrity check, compare the report's kept figures with "
    "the tables and list every bad cell (a value sma-log would not store, written by "
    "another tool), one line each; exit 1 if anything is wrong. Reads the whole file "
    "(about 40 s per 100,000 procedures on a small machine).",
)
@click.option(
    "--rebuild-report",
    is_flag=True,
    help="Rebuild the report's kept figures (report_facts, report_patients, report_cells) "
    "from the tables, in one transaction, and put their triggers back.",
)
@format_option(
    "json: one object on stdout (with --check its problems too; bad cells still "
    "go to stderr, one line each)."
)
@click.pass_obj
def info(opts: Options, check: bool, rebuild_report: bool, fmt: str) -> None:
    """Show the database file: path, schema version, counts, SQLite version, permissions.

    Opens the file read-only (except for --rebuild-report); a missing file is not created.
    """
    import sqlite3
    import stat

    from .domain.text import visible
    from .storage.schema import SCHEMA_VERSION
    from .storage.store import Store

    path = opts.db_path
    if rebuild_report:
        with Store.open(path, opts.user, create=False) as store:
            store.rebuild_report()
        click.echo(f"Rebuilt the report's kept figures in {path}.", err=fmt == "json")
    problems: list[str] = []
    rebuild_helps = False  # a kept-figures problem that --rebuild-report mends
    with Store.open(path, opts.user, create=False, readonly=True) as store:
        if check:
            from .commands.progress import progress_bar
            from .export.common import BadCells

            bad_lines: list[str] = []  # printed once the progress bar is gone
            # Three checks, each reading the whole file. SQLite's integrity check (one
            # call, no progress of its own) runs on a second read-only connection in a
            # thread while this one scans for bad cells and compares the report's kept
            # figures: SQLite lets go of the GIL, so on two cores the whole takes about
            # as long as the integrity check alone. The bar (on a terminal only) counts
            # the checks done and names what is running, with rows within the scan.
            integrity = _Background(lambda: _integrity_check(path, opts.user))
            with progress_bar("Checking", total=3, unit="checks") as bar:
                both = "integrity check + "
                bad = BadCells(echo=bad_lines.append, prefix="  bad cell: ")
                _bad_cells(store, bad, lambda what: bar.stage(both + what))
                bar.update_to(1, item=both + "report facts")
                older = store.user_version() < SCHEMA_VERSION
                found = [] if older else store.check_report()
                bar.update_to(2, item="SQLite integrity check")
                result = integrity.result()
                bar.update_to(3)
            if result != ["ok"]:
                problems.append(f"integrity check: {'; '.join(result[:3])}")
            for line in bad_lines:
                click.echo(line, err=True)
            if bad:
                problems.append(
                    f"{bad.count} bad cell(s), listed above: values sma-log would not store "
                    "(another tool wrote them); exports report them too"
                )
            if older:
                problems.append(
                    "report figures: not checked, the file is of an older schema (open it "
                    "once with this sma-log to upgrade it, a backup is kept)"
                )
            else:
                problems += [f"report figures: {p}" for p in found]
                rebuild_helps = bool(found)
        version = store.user_version()
        journal = store.journal_mode()
        meta = store.meta()
        counts = store.counts()
        open_n = store.open_procedure_count()
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
    if fmt == "json":
        _info_json(
            path=path,
            mode=mode,
            st_mode=st.st_mode,
            version=version,
            journal=journal,
            meta=meta,
            counts=counts,
            open_n=open_n,
            problems=problems if check else None,
        )
    if "demo" in meta:
        rows.append(("demo data", meta["demo"]))
    rows += [(table, str(n)) for table, n in counts.items()]
    rows.append(("open procedures", str(open_n)))
    if check:
        rows.append(("check", "ok" if not problems else f"{len(problems)} problem(s)"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows if fmt == "text" else ():
        click.echo(f"{key + ':':<{width + 2}}{visible(value)}")
    if problems:
        for p in problems:
            click.echo(f"  {visible(p)}", err=True)
        if rebuild_helps:
            click.echo("  (sma-log info --rebuild-report rebuilds them from the tables)", err=True)
        raise SystemExit(1)


def _info_json(
    *,
    path: Path,
    mode: int,
    st_mode: int,
    version: int,
    journal: str,
    meta: dict[str, Any],
    counts: dict[str, int],
    open_n: int,
    problems: list[str] | None,
) -> None:
    """``info --format json``: the same facts as the text, as one object on stdout."""
    import sqlite3
    import stat

    from .commands.followups import _json_text  # escaped when a text holds a control
    from .storage.schema import SCHEMA_VERSION

    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if os.path.exists(p))
    document: dict[str, Any] = {
        "database": str(path.resolve()),
        "schema_version": version,
        "schema_version_supported": SCHEMA_VERSION,
        "sma_log_version": __version__,
        "journal_mode": journal,
        "sqlite_version": sqlite3.sqlite_version,
        "python_version": sys.version.split()[0],
        "permissions": {
            "mode": f"{mode:04o}",
            "text": stat.filemode(st_mode),
            "readable_by_others": bool(mode & 0o077),
        },
        "size_bytes": size,
        "meta": meta,
        "counts": counts,
        "open_procedures": open_n,
    }
    if problems is not None:
        document["check"] = {"ok": not problems, "problems": problems}
    click.echo(_json_text(document))


def _bad_cells(store: Store, bad: Any, stage: Any = None) -> None:
    """Every bad cell of the data tables, reported to ``bad`` (one line each), table by
    table in one pass each; ``stage(text)`` says how far the scan is (rows)."""
    from .export.common import scan_bad_cells
    from .export.jsondoc import table_order

    present = set(store.tables())
    for table in table_order():
        if table in present:

            def show(done: int, total: int, table: str = table) -> None:
                if stage is not None:
                    stage(f"bad cells: {table} {done:,}/{total:,} rows")

            for cell in scan_bad_cells(store, table, show):
                bad.add(cell)


def _integrity_check(path: Path, user: str | None) -> list[str]:
    """SQLite's integrity check of the file on a connection of its own (a thread's)."""
    from .storage.store import Store

    with Store.open(path, user, create=False, readonly=True) as store:
        return store.integrity_check()


class _Background:
    """``work()`` in a daemon thread (an interrupt does not wait for it); :meth:`result`
    waits for it and returns what it returned or raises what it raised."""

    def __init__(self, work: Any) -> None:
        import threading

        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = work()
            except BaseException as exc:  # handed to the caller by result()
                self._error = exc

        self._thread = threading.Thread(target=run, name="sma-log-check", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        while self._thread.is_alive():
            self._thread.join(0.25)  # short waits: Ctrl-C is seen at once
        if self._error is not None:
            raise self._error
        return self._value


def _size(path: Path) -> str:
    total: float = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if os.path.exists(p))
    for unit in ("bytes", "KB", "MB", "GB"):
        if total < 1024 or unit == "GB":
            return f"{total:.0f} {unit}" if unit == "bytes" else f"{total:.1f} {unit}"
        total /= 1024
    return str(total)


# ---------------------------------------------------------------- more commands
#: The commands that live in sma_log.commands, imported only when one is used (its
#: name, or completion): ``--help`` and ``--version`` load none of them (issue 13: start-up).
#: name -> (module in sma_log.commands, attribute, the short help ``sma-log --help``
#: shows: the first sentence of its help; tests/test_cli.py checks it is the command's).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "datasette-metadata": (
        "datasette",
        "datasette_metadata",
        "Print Datasette metadata (JSON) for browsing the database with Datasette.",
    ),
    "export": (
        "export",
        "export",
        "Export the database for research: de-identified unless --identifiers is given.",
    ),
    "followups": (
        "followups",
        "followups",
        "The follow-up queue: overdue first, then due now, upcoming and missed.",
    ),
    "import": (
        "importcmd",
        "import_command",
        "Merge PATH (an sma-log database file or a JSON export) into the database.",
    ),
    "labs": (
        "labs",
        "labs",
        "Pre-dose lab results: platelets, PT, aPTT, INR, spot urine protein.",
    ),
    "learning": (
        "learning",
        "learning_command",
        "Each operator's learning curve: CUSUM and LC-CUSUM of failure, procedure by "
        "procedure in start order, and where each limit was first reached.",
    ),
    "pull": (
        "replicate",
        "pull",
        "Merge every device's latest replica in FOLDER into the database.",
    ),
    "replicate": (
        "replicate",
        "replicate",
        "Stream the database to a replica with Litestream, until stopped (Ctrl-C).",
    ),
    "report": (
        "report",
        "report",
        "The case-series figures of the ended procedures, overall and per group.",
    ),
    "restore": (
        "replicate",
        "restore",
        "Restore a copy of the database from a replica into a NEW file, then check it.",
    ),
    "settings": (
        "settings",
        "settings_command",
        "Show the settings, or change them (only the options given; the rest is kept).",
    ),
}
