"""``sma-log import PATH``: merge another sma-log database or JSON export into this one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..domain.text import visible
from .common import Options, format_option

#: Exit code when the import finished but left conflicts unresolved.
EXIT_CONFLICTS = 3
MAX_LISTED = 200


@click.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--prefer-incoming",
    is_flag=True,
    help="Where a record differs here, take the imported values (audited, old and new).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show what would be merged; write nothing (imported into a throw-away copy).",
)
@format_option(
    "The report: a table, or JSON (counts, every conflict, refused and recomputed record)."
)
@click.pass_obj
def import_command(
    opts: Options, path: Path, prefer_incoming: bool, dry_run: bool, fmt: str
) -> None:
    """Merge PATH (an sma-log database file or a JSON export) into the database.

    Records are matched by id. A new record is added; an identical one is skipped, so
    importing the same file twice changes nothing; a record that differs here is a
    conflict: reported and left as it is, unless --prefer-incoming. A new record that
    cannot live beside what is here is a conflict too (the same study code on another
    patient, a second procedure in progress for a patient, ...).

    Every record is checked as the bedside checks what is typed (ranges, codes, the
    order of a procedure's events); one that fails is refused and listed, with its
    children (a procedure with its events and follow-ups), and the rest is merged.
    Attempt counts, times and the other figures kept from the events are recomputed
    from the events, never taken from the file; records whose file values disagreed are
    listed.

    The import commits in short batches, so the bedside can keep recording while it
    runs; an import that was stopped completes when run again. Every change is in the
    audit log under your name, with a note of the file. The source file is only read;
    its own audit log is not copied (this file's log says what the import did).

    Exit codes: 0 merged, nothing left out; 3 merged what could be merged, conflicts or
    refused records left out (listed); 2 the file was refused (foreign, damaged, newer,
    not an export): nothing changed; 130 interrupted (Ctrl-C): the whole records merged
    before stay, run it again to complete it.
    """
    import contextlib
    import shutil
    import tempfile

    from ..importer import import_file, open_source
    from ..storage.store import Store
    from .progress import progress_bar

    target = opts.db_path
    source = open_source(path, target)  # refusals first: nothing opened or created yet
    scratch = None
    try:
        if dry_run and not target.exists():
            # A dry run creates nothing: compare against an empty database elsewhere.
            scratch = tempfile.mkdtemp(prefix="sma-log-import-")
            db_file = Path(scratch) / "empty.db"
        else:
            db_file = target
        label = "Importing (dry run)" if dry_run else "Importing"
        with (
            Store.open(db_file, opts.user) as store,
            progress_bar(label, unit="records") as bar,
        ):
            counted: Any = _Counted(source, bar) if bar.enabled else source
            try:
                result = import_file(
                    store,
                    path,
                    prefer_incoming=prefer_incoming,
                    dry_run=dry_run,
                    source=counted,
                    progress=bar.stage if bar.enabled else None,
                )
            except KeyboardInterrupt:
                bar.close()  # the message on a line of its own
                click.echo(
                    "sma-log: import interrupted: the whole records merged before stay; "
                    "run it again to complete it",
                    err=True,
                )
                click.get_current_context().exit(130)
    finally:
        source.close()
        if scratch:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)
    if fmt == "json":
        click.echo(json.dumps({"database": visible(str(target)), **result.as_dict()}, indent=2))
    else:
        _report(result, target)
    left = []
    if result.conflicts:
        left.append(f"{len(result.conflicts)} conflict(s) left unresolved")
    if result.refused:
        roots = sum(not r.cascade for r in result.refused)
        more = len(result.refused) - roots
        left.append(
            f"{roots} record(s) refused" + (f", {more} more left out with them" if more else "")
        )
    if result.recomputed:
        click.echo(
            f"sma-log: {len(result.recomputed)} record(s) disagreed with their events "
            "(recomputed from the events)",
            err=True,
        )
    if left:
        click.echo(f"sma-log: {', '.join(left)} (exit code {EXIT_CONFLICTS})", err=True)
        click.get_current_context().exit(EXIT_CONFLICTS)


class _Counted:
    """The import's source, counting the patients and procedures read (for the bar).

    Everything else is the source's own; the bar's total is the number of patients
    and procedures in the file (each unit the importer merges starts with one).
    """

    COUNTED = ("patients", "procedures")

    def __init__(self, source: Any, bar: Any) -> None:
        self._source = source
        self._bar = bar
        bar.update_to(0, total=sum(source.count(t) for t in self.COUNTED))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def rows(self, table: str) -> Any:
        rows = self._source.rows(table)
        return self._bar.wrap(rows) if table in self.COUNTED else rows


def _listing(title: str, lines: list[str]) -> None:
    click.echo(title)
    for line in lines[:MAX_LISTED]:
        click.echo(f"  {line}")
    if len(lines) > MAX_LISTED:
        more = len(lines) - MAX_LISTED
        click.echo(f"  ... and {more} more (--format json lists them all)")


def _report(result: Any, target: Path) -> None:
    kind = "sma-log database" if result.kind == "sqlite" else "sma-log JSON export"
    head = "Dry run (nothing written): would import" if result.dry_run else "Imported"
    click.echo(
        f"{head} {visible(result.source)} ({kind}, schema {result.schema_version}) "
        f"into {visible(str(target))}"
    )
    cols = ["inserted", "updated", "skipped", "conflicts"]
    if result.refused:
        cols.append("refused")
    width = max([len("total"), *(len(t) for t in result.counts)]) + 2
    click.echo("table".ljust(width) + "".join(c.rjust(11) for c in cols))
    totals = dict.fromkeys(cols, 0)
    for table, counts in result.counts.items():
        click.echo(table.ljust(width) + "".join(str(counts[c]).rjust(11) for c in cols))
        for c in cols:
            totals[c] += counts[c]
    click.echo("total".ljust(width) + "".join(str(totals[c]).rjust(11) for c in cols))
    if result.refused:
        roots = [r.line() for r in result.refused if not r.cascade]
        more = len(result.refused) - len(roots)
        _listing("Refused (not valid by the bedside's rules; left out with their children):", roots)
        if more:
            click.echo(
                f"  ({more} more record(s) left out with them: their children, or the "
                "records of a refused patient; --format json lists them all)"
            )
    if result.recomputed:
        _listing(
            "Recomputed from the events (the file's values disagreed; stored as recomputed):",
            [r.line() for r in result.recomputed],
        )
    if not result.conflicts:
        click.echo("No conflicts.")
        return
    advice = (
        ""
        if result.prefer_incoming
        else " (--prefer-incoming takes the imported values of records that differ)"
    )
    _listing(
        f"Conflicts, left as they are in this database{advice}:",
        [item.line() for item in result.conflicts],
    )
