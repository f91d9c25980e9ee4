"""``sma-log report``: the case-series table (read-only), as text, markdown, CSV or JSON."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import click

from ..domain.report_table import render_csv, render_markdown, render_text, title
from ..domain.text import visible
from .common import CommandRefused, Options, format_option, open_for_reading

if TYPE_CHECKING:
    from ..domain.stats import Unit

BY_CHOICES = (
    "approach",
    "guidance",
    "scoliosis",
    "hardware",
    "sma_type",
    "operator",
    "level",
    "year",
)
FORMATS = ("text", "markdown", "csv", "json")


def parse_date(text: str | None, option: str) -> Any:
    """A strict calendar date ``YYYY-MM-DD`` (pendulum), or a one-line refusal."""
    if text is None:
        return None
    import pendulum

    value = text.strip()
    try:
        if len(value) != 10:
            raise ValueError(value)
        return pendulum.from_format(value, "YYYY-MM-DD").date()
    except ValueError:
        raise CommandRefused(
            f"{option}: {text!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-27"
        ) from None


def parse_where(items: tuple[str, ...]) -> dict[str, list[str]]:
    """``--where approach=paramedian`` (repeatable; a grouping given twice keeps either
    value) → ``{"approach": ["paramedian"]}``, or a one-line refusal."""
    out: dict[str, list[str]] = {}
    for item in items:
        dim, sep, value = item.partition("=")
        if not sep or not dim.strip() or not value.strip():
            raise CommandRefused(
                f"--where: {visible(item)!r} is not GROUPING=VALUE, e.g. approach=paramedian"
            )
        out.setdefault(dim.strip(), []).append(value.strip())
    return out


@click.command("report")
@click.option(
    "--by",
    "by",
    metavar="GROUPING[,GROUPING]",
    default=None,
    help=f"Group the figures; two for a two-way table ({', '.join(BY_CHOICES)}).",
)
@click.option(
    "--where",
    "where",
    metavar="GROUPING=VALUE",
    multiple=True,
    help="Only procedures of this group, e.g. approach=paramedian (repeatable).",
)
@click.option(
    "--unit",
    type=click.Choice(("procedure", "patient")),
    default="procedure",
    show_default=True,
    help="Count procedures, or summarise each patient first (see below).",
)
@click.option("--from", "date_from", metavar="YYYY-MM-DD", default=None, help="First day (start).")
@click.option("--to", "date_to", metavar="YYYY-MM-DD", default=None, help="Last day (inclusive).")
@format_option("Table for the terminal or a document, or CSV / JSON for scripts.", FORMATS)
@click.pass_obj
def report(
    opts: Options,
    by: str | None,
    where: tuple[str, ...],
    unit: Unit,  # click.Choice of its two values
    date_from: str | None,
    date_to: str | None,
    fmt: str,
) -> None:
    """The case-series figures of the ended procedures, overall and per group.

    \b
    Figures: patients and procedures n; success n/N (%); attempts median (IQR; range);
    first-attempt success; <= 2 and <= 4 attempts; redirections; procedure and
    puncture time mean ± SD and median (range); satisfaction at 5 min and 72 h mean
    (range) with the n, scores taken in their window only (early, late and unknown
    timing counted on their own lines); sedation by kind; PDPH and other adverse
    events (n/N of the completed 72-hour follow-ups that answered the question);
    follow-up completeness; starts cancelled before the first puncture (in no figure);
    72-hour follow-ups missed for longer than the setting missed_after_days, out of
    the queue (counted now, over the whole file).

    \b
    --by approach,scoliosis gives every combination (a two-way table, as Ke et al.
    2025 report time by approach and scoliosis severity); --where approach=paramedian
    (repeatable) keeps only those procedures.

    \b
    --unit patient summarises each patient first: success = every dose delivered;
    attempts and redirections = the patient's median over their procedures (<= 2 and
    <= 4 attempts are shares of patients, as Zanfini et al. 2021 reported); sedation =
    the deepest received; an adverse event counts if any follow-up reported it. Times,
    satisfaction and follow-up completeness stay per procedure (per injection).

    \b
    Scoliosis groups by Cobb angle: none < 10°, mild 10–25°, moderate > 25–50°,
    severe > 50° (a boundary value goes to the milder class). Level = final level,
    else the intended one; year = year of the start (UTC). --from/--to are calendar
    days in the settings' time zone. The database is opened read-only.
    """
    from ..domain import stats
    from .common import site_timezone

    start = parse_date(date_from, "--from")
    end = parse_date(date_to, "--to")
    if start and end and end < start:
        raise CommandRefused(f"--to {end} is before --from {start}")
    filters = parse_where(where)
    for option, check in (
        ("--by", lambda: stats.parse_by(by)),
        ("--where", lambda: stats.parse_where(filters)),
    ):
        try:
            check()
        except ValueError as exc:
            raise CommandRefused(f"{option}: {visible(str(exc))}") from None
    tz = site_timezone(opts.settings) if (start or end) else "UTC"

    with open_for_reading(opts.db_path, opts.user) as store:
        try:
            result = store.load_report(
                by,
                unit,
                start,
                end,
                tz,
                where=filters,
            )
        except stats.DataError as exc:
            raise CommandRefused(f"cannot summarise: {exc}") from None
        # out of the queue, so not out of sight: counted now, with this site's settings
        s = opts.settings
        store.set_window(s.window_before_hours, s.window_after_hours)
        store.set_missed_after(s.missed_after_days)
        result.set_long_missed(store.long_missed_counts()["day3"], s.missed_after_days)
    if fmt == "json":
        import json

        doc = {
            "from": str(start) if start else None,
            "to": str(end) if end else None,
            "timezone": tz,
            **result.as_dict(),
        }
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        click.echo(render_csv(result), nl=False)
    elif fmt == "markdown":
        click.echo(title(result, start, end, tz))
        click.echo()
        click.echo("\n".join(render_markdown(result)))
        for line in result.quality_lines():
            click.echo(f"\n{line}")
    else:
        width = min(shutil.get_terminal_size((100, 24)).columns, 160)
        click.echo(title(result, start, end, tz))
        click.echo()
        click.echo("\n".join(render_text(result, max(width, 60))))
        for line in result.quality_lines():
            click.echo(f"\n{line}")
