"""``sma-log export``: the research export (csv, json, sqlite, redcap)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .common import (
    EXIT_BAD_CELLS,
    CommandRefused,
    Options,
    open_for_reading,
    site_timezone,
    unreadable_text_refused,
)

FORMATS = ("csv", "json", "sqlite", "redcap")
LABELS = {"csv": "CSV", "json": "JSON", "sqlite": "SQLite", "redcap": "REDCap"}
WARNING = (
    "sma-log: WARNING: --identifiers: this export CONTAINS IDENTIFYING DATA (names, record "
    "numbers, birth dates, free-text notes, exact times). Keep it encrypted and share it "
    "only under your data-protection agreement."
)


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="csv: a folder of CSV files with a data dictionary; json: one document; "
    "sqlite: a consistent copy of the database; redcap: a REDCap data dictionary and "
    "import file.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write: a folder (csv, redcap) or a file (json, sqlite).",
)
@click.option(
    "--identifiers",
    is_flag=True,
    help="Include names, record numbers, birth dates, free-text notes and exact times "
    "(default: de-identified).",
)
@click.option(
    "--from",
    "date_from",
    metavar="DATE",
    help="Only procedures started on or after DATE (YYYY-MM-DD, site time zone).",
)
@click.option(
    "--to",
    "date_to",
    metavar="DATE",
    help="Only procedures started on or before DATE (YYYY-MM-DD, site time zone).",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists (an earlier export).")
@click.option(
    "--excel",
    is_flag=True,
    help="csv: write UTF-8 with a byte-order mark, so Excel shows –, °, ² right.",
)
@click.pass_obj
def export(
    opts: Options,
    fmt: str,
    out: Path,
    identifiers: bool,
    date_from: str | None,
    date_to: str | None,
    force: bool,
    excel: bool,
) -> None:
    """Export the database for research: de-identified unless --identifiers is given.

    \b
    De-identified (default): no identifiers table, no free-text notes (notes, failure
    reasons, other adverse events, closed reasons, contact notes, time-out reasons),
    no time of day (every instant is its date in the site time zone, in every format
    including the SQLite copy; elapsed times are kept in minutes or seconds), record ids
    with their time part zeroed, and no audit log in the SQLite copy. Study codes are
    kept.

    \b
    csv     PATH/ holds patients, procedures, attempts, events, followups,
            contact_attempts, labs, timeouts, procedures_analysis and
            data_dictionary .csv
    json    PATH is one JSON document (its JSON Schema ships with sma-log)
    sqlite  PATH is a consistent copy, safe while another sma-log is writing
    redcap  PATH/ holds redcap_data_dictionary.csv and redcap_import.csv

    Every format goes through one de-identification rule and lists what it removed
    or masked: JSON in its "deidentification" header, CSV in data_dictionary.csv,
    SQLite in its meta table. A de-identified JSON document is for sharing: sma-log
    import refuses it (it could only invent the times and ids it lacks); export with
    --identifiers to move data between sma-log files. The de-identified SQLite copy
    is built from de-identified rows in a private staging folder; what a killed
    export left beside PATH is removed by the next export.

    CSV files are UTF-8 with CRLF line ends (RFC 4180); --excel adds a byte-order
    mark for Excel.

    Text cells that begin with =, +, -, @, a tab or a carriage return get a leading '
    in CSV files (spreadsheet formula injection). Every file is created 0600. An
    existing PATH is refused unless --force is given.

    \b
    Bad cells, values sma-log would not store (another tool wrote them: month 13,
    Infinity, text in a number column, a BLOB, a code outside the vocabulary): each
    is one line on stderr (table, id, column, what is wrong, the value with control
    characters made visible) and the export ends with exit code 3.
      csv     written as stored; a BLOB, and de-identified an instant that cannot
              be read (its date is unknown, its text may hold a time), empty
      json    written as stored; a BLOB or Infinity (JSON has neither) as null
      sqlite  copied as stored; de-identified, an instant that cannot be read is
              emptied, or the export refused (exit 2) where its column cannot be
      redcap  written empty (REDCap checks every value); a bad study code, the
              record id, refuses the export (exit 2)
    A text cell that is not UTF-8 refuses every format (exit 2). Every bad cell of
    the file: sma-log info --check.
    """
    from ..domain.text import visible
    from ..export.common import (
        BadCells,
        ExportOptions,
        check_out,
        parse_date,
        remove_stale_staging,
    )
    from .progress import progress_bar

    d_from = parse_date(date_from, "--from")
    d_to = parse_date(date_to, "--to")
    if d_from and d_to and d_from > d_to:
        raise CommandRefused(f"--from {d_from} is after --to {d_to}")
    tz = site_timezone(opts.settings)
    folder = fmt in ("csv", "redcap")
    out = check_out(out, force, opts.db_path, folder)
    if excel and fmt != "csv":
        raise CommandRefused("--excel applies to --format csv only")
    remove_stale_staging(out)  # what killed exports left beside --out
    if fmt == "json":
        writer = _json_writer()
    eo = ExportOptions(identifiers, tz, d_from, d_to, excel=excel)
    eo.bad = BadCells(echo=lambda line: click.echo(line, err=True))
    if identifiers:
        click.echo(WARNING, err=True)
    started = time.perf_counter()
    with (
        open_for_reading(opts.db_path, opts.user) as store,
        unreadable_text_refused(),
        progress_bar(f"Exporting {LABELS[fmt]}", unit="rows") as bar,
    ):
        if bar.enabled:  # a bar on a terminal; in a pipe the writers report nothing
            eo.progress = bar.update_to
        if fmt == "csv":
            from ..export.csvfiles import write_csv

            counts = write_csv(store, out, eo, force)
            summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        elif fmt == "sqlite":
            from ..export.sqlitecopy import write_sqlite

            counts = write_sqlite(store, out, eo, force)
            summary = ", ".join(f"{n} {t}" for t, n in counts.items())
        elif fmt == "redcap":
            from ..export.redcap import write_redcap

            counts = write_redcap(store, out, eo, force)
            summary = ", ".join(f"{n} {name}" for name, n in counts.items())
        else:
            summary = _run_json(writer, store, out, eo, force)
    kind = "identified" if identifiers else "de-identified"
    click.echo(
        f"Wrote {visible(str(out))} ({fmt}, {kind}, {eo.range_text()}) in "
        f"{time.perf_counter() - started:.1f} s: {summary}"
    )
    if eo.bad:
        click.echo(
            f"sma-log: {eo.bad.count} bad cell(s) exported as listed above (exit code "
            f"{EXIT_BAD_CELLS}); sma-log info --check lists every bad cell of the file",
            err=True,
        )
        click.get_current_context().exit(EXIT_BAD_CELLS)


def _json_writer() -> Any:
    try:
        from ..export.jsondoc import write_json
    except ImportError as exc:
        if exc.name and exc.name.startswith("sma_log"):
            raise CommandRefused(
                "--format json is not available yet in this build (sma_log.export.jsondoc "
                "is missing); use csv, sqlite or redcap"
            ) from None
        raise
    return write_json


def _run_json(writer: Any, store: Any, out: Path, eo: Any, force: bool) -> str:
    """The JSON document (written by sma_log.export.jsondoc), filtered like the others.

    The dates go over as the instants they mean in the site time zone: local midnight
    of --from, and the last microsecond of --to.
    """
    from datetime import timedelta

    lo, hi = eo.utc_bounds
    d_from = _instant(lo) if lo else None
    d_to = _instant(hi) - timedelta(microseconds=1) if hi else None
    try:
        result = writer(
            store,
            out,
            identifiers=eo.identifiers,
            date_from=d_from,
            date_to=d_to,
            progress=eo.progress,
            overwrite=force,
            bad=eo.bad,
            tz=eo.tz,
        )
    except FileExistsError:
        raise CommandRefused(f"{out}: already exists; choose another path or use --force") from None
    if isinstance(result, dict):
        return ", ".join(f"{v} {k}" for k, v in result.items())
    return "one JSON document"


def _instant(text: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(text.replace("Z", "")).replace(tzinfo=UTC)
