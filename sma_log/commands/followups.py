"""``sma-log followups``: the nurses' queue headless (text, JSON) and as an iCalendar file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import (
    EXIT_BAD_CELLS,
    CommandRefused,
    Options,
    format_option,
    local_iso,
    open_for_reading,
    site_timezone,
    unreadable_text_refused,
    utc_text,
    write_private,
)

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage.followups import QueueItem
    from ..storage.store import Store

STATUS_CHOICES = ("overdue", "due", "upcoming", "missed", "all")
ICS_PRODID = "-//sma-log//follow-ups//EN"
ICS_DOMAIN = "sma-log"
#: Length of a follow-up's calendar event: the 5-minute score is a moment at the end
#: of the procedure, the 72-hour call a 30-minute slot at its due time.
ICS_MINUTES = {"score_5min": 15, "day3": 30}
#: What the calendar holds of each table, for its de-identification lines
#: (``X-SMA-LOG-DEIDENTIFICATION``): ids masked, instants kept (an event is at its
#: due time), nothing identifying.
ICS_COLUMNS = {
    "followups": ("id", "procedure_id", "kind", "due_at", "created_at"),
    "procedures": ("id", "patient_id", "ended_at", "operator"),
    "patients": ("id", "study_code"),
}


def _ics_masks() -> frozenset[str]:
    """The calendar masks ids only: its events must keep their due time."""
    from ..export.common import MASK_IDS

    return frozenset({MASK_IDS})


def _queue_rows(
    store: Store, settings: Settings, tz: str, statuses: tuple[str, ...] | None
) -> list[tuple[dict[str, Any], QueueItem]]:
    """The queue: (the JSON object, the QueueItem) per follow-up, in queue order."""
    from ..domain import dosing, schedule

    store.set_window(settings.window_before_hours, settings.window_after_hours)
    store.set_score_earliest(settings.score_earliest_min)
    store.set_missed_after(settings.missed_after_days)
    now = store.now()
    today = now.in_timezone(tz).date()
    # Every missed follow-up when they are asked for; else the queue (what needs action).
    missed_too = statuses is not None and "missed" in statuses
    items = store.followup_queue(statuses=statuses, now=now, missed_too=missed_too)
    found = store.next_doses((item.row["patient_id"] for item in items), settings.label, tz, today)
    next_doses: dict[str, Any] = {}
    out = []
    for item in items:
        row = item.row
        pid = row["patient_id"]
        if pid not in next_doses:
            nd = found[pid]
            if isinstance(nd, ValueError):  # a dose's time or regimen cannot be read
                raise nd
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
                    "what": schedule.KIND_WORDS.get(row["kind"], row["kind"]),
                    "status": item.status,
                    "status_words": schedule.STATUS_WORDS.get(item.status, item.status),
                    "study_code": _text(row["study_code"]),
                    "patient_id": pid,
                    "procedure_id": row["procedure_id"],
                    "procedure_ended_utc": utc_text(row["ended_at"]),
                    "procedure_ended_local": local_iso(row["ended_at"], tz),
                    "operator": _text(row["operator"]),
                    "due_utc": utc_text(item.due),
                    "due_local": local_iso(item.due, tz),
                    "window_opens_utc": utc_text(opens),
                    "window_closes_utc": utc_text(closes),
                    "relative": schedule.relative_phrase(item.due, now, settings.locale),
                    "contact_attempts": _count(row["contact_attempts_n"]),
                    "last_contact_utc": utc_text(_instant(row["last_contact_at"])),
                    "last_contact_local": local_iso(_instant(row["last_contact_at"]), tz),
                    "timezone": tz,
                    "next_dose": next_doses[pid],
                },
                item,
            )
        )
    return out


def _text(value: Any) -> Any:
    """A text cell as the queue shows it: a BLOB (a bad cell, reported) is no value."""
    return None if isinstance(value, bytes) else value


def _count(value: Any) -> int | None:
    """A count cell: None (unknown) unless it is a whole number (a bad cell otherwise)."""
    if value is None:
        return 0
    return value if isinstance(value, int) else None


def _instant(value: Any) -> Any:
    """A stored instant, or None when it cannot be read (a bad cell, reported)."""
    from ..domain.clock import from_text

    try:
        return from_text(value) if value is not None else None
    except ValueError:
        return None


#: The cells that place a follow-up or a next dose in time: a bad one refuses the
#: command (a reminder left out or moved without a word is worse than none).
TIMING_CELLS = {
    "followups": ("kind", "state", "due_at"),
    "procedures": ("started_at", "ended_at", "drug_delivered", "regimen"),
}
#: Cells only shown: a bad one is reported and shown as unknown.
SHOWN_CELLS = {
    "followups": ("contact_attempts_n", "last_contact_at", "created_at"),
    "procedures": ("operator",),
    "patients": ("study_code", "created_at"),
}


def check_cells(store: Store, every_patient: bool, bad: Any) -> None:
    """Report the bad cells the queue (and with ``every_patient`` the calendar's next
    doses) is made from; refuse (one line) if one places a reminder in time."""
    from ..export.common import bad_cells_of
    from ..storage.followups import queue_rows_where

    where = queue_rows_where(every_patient)
    scans = (
        ("followups", TIMING_CELLS["followups"][:2], where["all"]),  # a bad state may hide one
        ("followups", ("due_at", *SHOWN_CELLS["followups"]), where["open followups"]),
        (
            "procedures",
            (*TIMING_CELLS["procedures"], *SHOWN_CELLS["procedures"]),
            where["procedures"],
        ),
        ("patients", SHOWN_CELLS["patients"], where["patients"]),
    )
    found = []
    seen = set()
    for table, columns, rows in scans:
        for cell in bad_cells_of(store, table, columns, where=rows):
            if (table, cell.rowid, cell.column) not in seen:
                seen.add((table, cell.rowid, cell.column))
                found.append(cell)
    timing = [c for c in found if c.column in TIMING_CELLS.get(c.table, ())]
    if timing:
        more = f" (and {len(timing) - 1} more)" if len(timing) > 1 else ""
        raise CommandRefused(
            f"the follow-up queue is computed from times and codes, and {timing[0].line()}"
            f"{more}: a reminder could be left out or misplaced; fix it in the file "
            "(sma-log info --check lists every bad cell)"
        )
    for cell in found:
        shown = isinstance(cell.value, str) and cell.column in ("study_code", "operator")
        bad.add(cell, "shown escaped" if shown else "shown as unknown")


def _text_table(rows: list[tuple[dict[str, Any], QueueItem]], tz: str, locale: str) -> list[str]:
    from ..domain import schedule
    from ..domain.clock import from_text, now_utc
    from ..domain.text import visible

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
        calls = r["contact_attempts"]
        table.append(
            (
                r["status_words"],
                visible(r["study_code"]) or "?",
                schedule.format_local(ended, tz, "D MMM YYYY", locale),
                visible(r["operator"]) or "—",
                r["what"],
                schedule.format_local(
                    item.due,
                    tz,
                    "ddd D MMM HH:mm" if item.due.year == this_year else "ddd D MMM YYYY HH:mm",
                    locale,
                ),
                r["relative"],
                "?" if calls is None else str(calls),
                visible(r["next_dose"]["text"]) if r["next_dose"] else "—",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]


@click.command()
@click.option(
    "--status",
    type=click.Choice(STATUS_CHOICES),
    default="all",
    show_default=True,
    help="Only follow-ups in this state (all: the queue, every open follow-up but those "
    "missed longer ago than the setting missed_after_days; missed: every missed one).",
)
@format_option("An aligned table, or JSON for scripts.")
@click.option(
    "--ics",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the follow-ups and every patient's next dose as an iCalendar file "
    "instead (permissions 0600).",
)
@click.option("--force", is_flag=True, help="With --ics: replace PATH if it exists.")
@click.pass_obj
def followups(opts: Options, status: str, fmt: str, ics: Path | None, force: bool) -> None:
    """The follow-up queue: overdue first, then due now, upcoming and missed.

    \b
    Open follow-ups only (the 5-minute score and the 72-hour call of each ended
    procedure); "missed" ones are open past their window (late entry is still
    allowed). One missed for longer than the setting missed_after_days (default 14
    days after its window closed) leaves the queue: --status missed lists it.
    Statuses use the follow-up window of the settings; times are shown in the
    settings' time zone and locale (see: sma-log settings). The database is opened
    read-only; a missing file is not created. Exit code 0, also when the queue is empty.

    \b
    --format json prints a list of objects, one per follow-up, in queue order, with
    these keys (times as UTC "...Z" and local ISO 8601 with offset):
      id, kind (score_5min | day3), what, status (overdue | due | upcoming | missed),
      status_words, study_code, patient_id, procedure_id, procedure_ended_utc,
      procedure_ended_local, operator, due_utc, due_local, window_opens_utc,
      window_closes_utc, relative ("due in 5 hours"), contact_attempts (null if
      the stored count is not a number),
      last_contact_utc, last_contact_local, timezone, next_dose (null or {due_date,
      regimen, reason, warnings, missed_rule, text}).

    \b
    --ics PATH writes one event per open follow-up (UID followup-<id>@sma-log, at its
    due time) and one all-day event per patient's next dose (UID
    next-dose-<patient id>@sma-log), so importing again updates the same events. Only
    the study code identifies a patient: no names, record numbers or notes. Record
    ids go through the export's de-identification: their time part is zeroed; event
    times are kept (a reminder is at its due time). X-SMA-LOG-DEIDENTIFICATION lines
    say so. An existing PATH is refused unless --force is given, and --force replaces
    only a regular file (never a FIFO, a device, a symbolic link, the database or its
    journal files).

    \b
    Text from the file is shown with its control characters made visible (JSON
    escapes them). Bad cells (values sma-log would not store, written by another
    tool): one that places a reminder in time (a follow-up's kind, state or due
    time; a procedure's start, end, delivery or regimen) refuses the command with
    one line (exit code 2): a reminder is never left out or moved without a word.
    Others (a count, a study code, an operator) are each reported on one line of
    stderr, shown as unknown or escaped, and the command ends with exit code 3.
    """
    if force and ics is None:
        raise click.UsageError("--force only applies with --ics")
    settings = opts.settings
    tz = site_timezone(settings)
    statuses = None if status == "all" else (status,)
    from ..domain.text import visible
    from ..export.common import BadCells, check_out

    if ics is not None:  # the exports' guard, before reading anything
        ics = check_out(ics, force, opts.db_path, folder=False)

    bad = BadCells(echo=lambda line: click.echo(line, err=True))
    with open_for_reading(opts.db_path, opts.user) as store, unreadable_text_refused():
        check_cells(store, ics is not None, bad)
        rows = _queue_rows(store, settings, tz, statuses)
        if ics is not None:
            data, n_doses = _calendar(store, rows, settings, tz)
    if ics is not None:
        write_private(ics, data, force)
        click.echo(
            f"Wrote {visible(str(ics))}: {len(rows)} follow-up(s) and {n_doses} next dose(s) "
            f"as calendar events (times in UTC; shown in {tz} by your calendar)."
        )
    elif fmt == "json":
        click.echo(_json_text([r for r, _ in rows]))
    elif not rows:
        from ..domain.schedule import STATUS_WORDS

        which = "open follow-ups" if status == "all" else f"follow-ups {STATUS_WORDS[status]}"
        click.echo(f"No {which}.")
    else:
        for line in _text_table(rows, tz, settings.locale):
            click.echo(line)
    if bad:
        click.echo(
            f"sma-log: {bad.count} bad cell(s), listed above (exit code "
            f"{EXIT_BAD_CELLS}); sma-log info --check lists every bad cell of the file",
            err=True,
        )
        click.get_current_context().exit(EXIT_BAD_CELLS)


def _json_text(value: Any) -> str:
    """JSON for a terminal or a script: UTF-8 as it is, unless a text holds a character
    :func:`~sma_log.domain.text.visible` would escape (C1 controls and bidi overrides
    are valid raw JSON): then every non-ASCII character is a JSON escape."""
    import json

    from ..domain.text import visible

    text = json.dumps(value, ensure_ascii=False, indent=2)
    if visible(text, multiline=True) != text:
        text = json.dumps(value, ensure_ascii=True, indent=2)
    return text


def _revision(store: Store, records: list[tuple[str, str]], fallback: Any) -> tuple[int, Any]:
    """How often these records changed (audited updates) and when last: SEQUENCE and
    DTSTAMP of a calendar event. The audit log is append-only, so both only grow, and
    they stay the same from one export to the next while nothing changes. Entries whose
    time cannot be read (bad cells another tool wrote) are not counted for the time;
    ``fallback`` (an instant) stands in when none can be."""
    n, last = store.revision(records)
    return n, _instant(last) or fallback


def _utc_datetime(value: Any) -> Any:
    """A stdlib datetime in UTC (so the calendar file says ...Z, not TZID=UTC)."""
    from datetime import datetime

    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _uid_rule(tz: str) -> Callable[[str, Any], str]:
    """A record id as the calendar's UID holds it: through the one de-identification
    rule (:func:`~sma_log.export.common.deidentify_row`) with :func:`_ics_masks`, so
    its time part is zeroed (stable from one export to the next: the rest of a ULID
    is unique on its own)."""
    from types import SimpleNamespace

    from ..export.common import LocalDates, deidentify_row

    rule, dates = SimpleNamespace(identifiers=False, tz=tz), LocalDates(tz)
    masks = _ics_masks()

    def uid(table: str, rid: Any) -> str:
        row = deidentify_row(table, {"id": rid}, rule, dates, masks)
        return str(row["id"]) if row else ""

    return uid


def _calendar(
    store: Store, rows: list[tuple[dict[str, Any], QueueItem]], settings: Settings, tz: str
) -> tuple[bytes, int]:
    """The iCalendar file (bytes) and how many next-dose events it holds."""
    from datetime import date, timedelta

    import icalendar
    import pendulum

    from ..domain import schedule, vocab
    from ..domain.clock import from_text
    from ..domain.text import visible
    from ..export.common import deidentification_manifest, manifest_lines

    regimens = dict(vocab.REGIMENS)
    when = "ddd D MMM YYYY HH:mm"
    uid = _uid_rule(tz)
    cal = icalendar.Calendar()
    cal.add("prodid", ICS_PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", "sma-log follow-ups")
    manifest = deidentification_manifest(False, ICS_COLUMNS, tz, _ics_masks())
    for key, text in manifest_lines(manifest):
        cal.add("x-sma-log-deidentification", f"{key}: {text}")
    for r, item in rows:
        row = item.row
        due = from_text(row["due_at"])
        ended = from_text(row["ended_at"])
        n, last = _revision(
            store,
            [
                ("followups", r["id"]),
                ("procedures", r["procedure_id"]),
                ("patients", r["patient_id"]),
            ],
            _instant(row["created_at"]) or due,
        )
        code = visible(r["study_code"]) or "?"
        calls = r["contact_attempts"]
        ev = icalendar.Event()
        ev.add("uid", f"followup-{visible(uid('followups', r['id']))}@{ICS_DOMAIN}")
        ev.add("dtstamp", _utc_datetime(last))
        ev.add("last-modified", _utc_datetime(last))
        ev.add("sequence", n)
        ev.add("dtstart", _utc_datetime(due))
        ev.add("duration", timedelta(minutes=ICS_MINUTES.get(row["kind"], 30)))
        ev.add("summary", f"{visible(r['what'])} — {code}")
        lines = [
            f"{visible(schedule.KIND_WORDS.get(row['kind'], row['kind']))} for {code}",
            "Procedure: " + schedule.format_local(ended, tz, when, settings.locale),
            f"Operator: {visible(r['operator']) or '—'}",
            "Due: " + schedule.format_local(due, tz, when, settings.locale) + f" ({tz})",
            f"Calls without answer so far: {'?' if calls is None else calls}",
        ]
        ev.add("description", "\n".join(lines))
        ev.add("categories", ["sma-log", visible(r["what"])])
        ev.add("transp", "TRANSPARENT")
        cal.add_component(ev)
    doses = 0
    zone = pendulum.timezone(tz)  # parsed once, not once per patient
    today = store.now().in_timezone(zone).date()
    patients = store.patients_by_code()
    for p in patients:
        nd = store.next_dose(p["id"], settings.label, zone, today)
        if nd is None:
            continue
        procs = store.procedure_ids(p["id"])
        due_day = date(nd.due.year, nd.due.month, nd.due.day)
        n, last = _revision(
            store,
            [("patients", p["id"]), *[("procedures", q) for q in procs]],
            _instant(p["created_at"]) or pendulum.datetime(due_day.year, due_day.month, 1),
        )
        code = visible(_text(p["study_code"])) or "?"
        ev = icalendar.Event()
        ev.add("uid", f"next-dose-{visible(uid('patients', p['id']))}@{ICS_DOMAIN}")
        ev.add("dtstamp", _utc_datetime(last))
        ev.add("last-modified", _utc_datetime(last))
        # A new procedure (an insert) moves the next dose too: count those as changes.
        ev.add("sequence", n + len(procs))
        ev.add("dtstart", due_day)
        ev.add("dtend", due_day + timedelta(days=1))
        ev.add("summary", f"Next nusinersen dose — {code}")
        lines = [
            f"{visible(regimens.get(nd.regimen, nd.regimen))} for {code}",
            f"Why: {visible(nd.reason)}",
            f"Dosing label: {visible(settings.label.upper())}",
            *[f"Warning: {visible(w)}" for w in nd.warnings],
        ]
        ev.add("description", "\n".join(lines))
        ev.add("categories", ["sma-log", "Next dose"])
        ev.add("transp", "TRANSPARENT")
        cal.add_component(ev)
        doses += 1
    return cal.to_ical(), doses
