"""``sma-log report``: the case-series table (read-only), as text, markdown, CSV or JSON."""

from __future__ import annotations

import shutil
from typing import Any

import click

from .common import CommandRefused, Options, open_for_reading

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
UNIT_WORDS = {"procedure": "proc.", "patient": "patient"}


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


# ---------------------------------------------------------------- formatting cells
def _num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "—"
    if float(v).is_integer() and digits <= 1:
        return str(int(v))
    return f"{v:.{digits}f}"


def _cells(fig: Any) -> list[str]:
    """One or two text lines for a figure (numbers only; the row label says what)."""
    from ..domain.stats import Count, Spread

    v = fig.value
    if isinstance(v, int):
        return [str(v)]
    if isinstance(v, Count):
        pct = "—" if v.pct is None else f"{v.pct:.1f}%"
        return [f"{v.n}/{v.N} ({pct})"]
    assert isinstance(v, Spread)
    if v.n == 0:
        return ["—"] if fig.key in _MEDIAN_ONLY else ["—", "—"]
    if fig.key in _MEDIAN_ONLY:
        return [f"{_num(v.median)} ({_num(v.q1)}–{_num(v.q3)}; {_num(v.min)}–{_num(v.max)})"]
    if fig.key.startswith("satisfaction"):
        return [f"{v.mean:.2f} ({_num(v.min)}–{_num(v.max)})", f"{v.n}"]
    sd = "—" if v.sd is None else f"{v.sd:.1f}"
    return [f"{v.mean:.1f} ± {sd}", f"{v.median:.1f} ({v.min:.1f}–{v.max:.1f})"]


_MEDIAN_ONLY = ("attempts", "redirections")
_SECOND_LINE = {
    "procedure_min": ("mean ± SD", "median (range)"),
    "puncture_min": ("mean ± SD", "median (range)"),
    "satisfaction_5min": ("mean (range)", "n answered"),
    "satisfaction_72h": ("mean (range)", "n answered"),
}


def table_rows(report: Any) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per figure line; columns: figure, unit, groups…, overall."""
    groups = [*report.groups, report.overall]
    header = ["Figure", "Unit", *[g.label for g in groups]]
    rows: list[list[str]] = []
    for i, fig in enumerate(report.overall.figures):
        cols = [_cells(g.figures[i]) for g in groups]
        labels = [fig.label]
        if fig.key in _SECOND_LINE:
            labels = [f"{fig.label}, {s}" for s in _SECOND_LINE[fig.key]]
        for line, label in enumerate(labels):
            rows.append(
                [label, UNIT_WORDS[fig.unit], *[c[line] if line < len(c) else "" for c in cols]]
            )
    return header, rows


def render_text(report: Any, width: int) -> list[str]:
    """Aligned table; groups beyond ``width`` continue in further blocks."""
    header, rows = table_rows(report)
    label_w = max(len(r[0]) for r in [header, *rows])
    unit_w = max(len(r[1]) for r in [header, *rows])
    col_ws = [max(len(r[i]) for r in [header, *rows]) for i in range(2, len(header))]
    fixed = label_w + 2 + unit_w
    blocks: list[list[int]] = [[]]
    used = fixed
    for i, w in enumerate(col_ws):
        if blocks[-1] and used + 2 + w > width:
            blocks.append([])
            used = fixed
        blocks[-1].append(i)
        used += 2 + w
    out: list[str] = []
    for b, block in enumerate(blocks):
        if b:
            out.append("")
        for r, row in enumerate([header, *rows]):
            cells = [row[0].ljust(label_w), row[1].ljust(unit_w)]
            cells += [row[2 + i].rjust(col_ws[i]) for i in block]
            out.append("  ".join(cells).rstrip())
            if r == 0:
                out.append("-" * min(width, len(out[-1])))
    return out


def render_markdown(report: Any) -> list[str]:
    header, rows = table_rows(report)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"] + [
        line(r) for r in rows
    ]


CSV_FIELDS = (
    "by",
    "group",
    "group_label",
    "figure",
    "figure_label",
    "unit",
    "n",
    "N",
    "pct",
    "mean",
    "sd",
    "median",
    "q1",
    "q3",
    "min",
    "max",
)


def render_csv(report: Any) -> str:
    """Long format: one row per group × figure; empty cells where a statistic does not apply."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for g in [*report.groups, report.overall]:
        for fig in g.figures:
            d = fig.as_dict()
            w.writerow(
                {
                    "by": report.by or "",
                    "group": g.group,
                    "group_label": g.label,
                    "figure": d.pop("key"),
                    "figure_label": d.pop("label"),
                    "unit": d.pop("unit"),
                    **{k: ("" if v is None else v) for k, v in d.items()},
                }
            )
    return buf.getvalue()


def _title(report: Any, date_from: Any, date_to: Any, tz: str) -> str:
    span = ""
    if date_from or date_to:
        span = f", started {date_from or '…'} to {date_to or '…'} ({tz})"
    by = f" by {report.by}" if report.by else ""
    return (
        f"Case series{by}: {report.overall.figure('procedures').value} ended procedure(s){span}; "
        f"unit: {report.unit} (the Unit column says which each figure counts)"
    )


@click.command("report")
@click.option("--by", "by", type=click.Choice(BY_CHOICES), default=None, help="Group the figures.")
@click.option(
    "--unit",
    type=click.Choice(("procedure", "patient")),
    default="procedure",
    show_default=True,
    help="Count procedures, or summarise each patient first (see below).",
)
@click.option("--from", "date_from", metavar="YYYY-MM-DD", default=None, help="First day (start).")
@click.option("--to", "date_to", metavar="YYYY-MM-DD", default=None, help="Last day (inclusive).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="Table for the terminal or a document, or CSV / JSON for scripts.",
)
@click.pass_obj
def report(
    opts: Options,
    by: str | None,
    unit: str,
    date_from: str | None,
    date_to: str | None,
    fmt: str,
) -> None:
    """The case-series figures of the ended procedures, overall and per group.

    \b
    Figures: patients and procedures n; success n/N (%); attempts median (IQR; range);
    first-attempt success; <= 2 and <= 4 attempts; redirections; procedure and
    puncture time mean ± SD and median (range); satisfaction at 5 min and 72 h mean
    (range) with the n answered; sedation by kind; PDPH and other adverse events (of
    procedures with a completed 72-hour follow-up); follow-up completeness.

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
    from ..storage.reportcache import load_report
    from .common import site_timezone

    start = parse_date(date_from, "--from")
    end = parse_date(date_to, "--to")
    if start and end and end < start:
        raise CommandRefused(f"--to {end} is before --from {start}")
    tz = site_timezone(opts.settings) if (start or end) else "UTC"
    from ..domain.stats import DataError

    with open_for_reading(opts.db_path, opts.user) as store:
        try:
            result = load_report(store.conn, by, unit, start, end, tz)  # type: ignore[arg-type]
        except DataError as exc:
            raise CommandRefused(f"cannot summarise: {exc}") from None
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
        click.echo(_title(result, start, end, tz))
        click.echo()
        click.echo("\n".join(render_markdown(result)))
    else:
        width = min(shutil.get_terminal_size((100, 24)).columns, 160)
        click.echo(_title(result, start, end, tz))
        click.echo()
        click.echo("\n".join(render_text(result, max(width, 60))))
