"""The report as a table: the same cells for ``sma-log report`` and the report screen.

Pure formatting of a :class:`~sma_log.domain.stats.Report` (no I/O): one row per figure
line, a column per group and overall. Group labels come from the file (operator
names, years…) and are shown through :func:`sma_log.domain.text.visible`.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from .text import visible

if TYPE_CHECKING:
    from .stats import Figure, Report

UNIT_WORDS = {"procedure": "proc.", "patient": "patient"}


# ---------------------------------------------------------------- formatting cells
def _num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "—"
    if float(v).is_integer() and digits <= 1:
        return str(int(v))
    return f"{v:.{digits}f}"


def _cells(fig: Figure) -> list[str]:
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
        if fig.key in _MEDIAN_ONLY:
            return ["—"]
        return ["—", "0"] if fig.key.startswith("satisfaction") else ["—", "—"]
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


def table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per figure line; columns: figure, unit, groups…, overall."""
    groups = [*report.groups, report.overall]
    header = ["Figure", "Unit", *[visible(g.label) for g in groups]]
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


def render_text(report: Report, width: int) -> list[str]:
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


def render_markdown(report: Report) -> list[str]:
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


def render_csv(report: Report) -> str:
    """Long format: one row per group × figure; empty cells where a statistic does not apply.

    CRLF line ends (RFC 4180), like every CSV file sma-log writes (the export too).
    """
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\r\n")
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
    # the data-quality counts: group "overall" (the report's dates and filters) or
    # "file" (the whole file: the follow-ups missed too long, counted now)
    labels = {"overall": "Overall", "file": "Whole file"}
    for key, label, scope, n in report.quality_items():
        w.writerow(
            {
                "by": report.by or "",
                "group": scope,
                "group_label": labels[scope],
                "figure": key,
                "figure_label": label,
                "unit": "procedure",
                "n": n,
            }
        )
    return buf.getvalue()


def title(report: Report, date_from: date | None, date_to: date | None, tz: str) -> str:
    span = ""
    if date_from or date_to:
        span = f", started {date_from or '…'} to {date_to or '…'} ({tz})"
    by = f" by {' × '.join(report.by.split(','))}" if report.by else ""
    if report.where:
        only = "; ".join(f"{dim} = {', '.join(codes)}" for dim, codes in report.where.items())
        by += f", only {visible(only)}"
    return (
        f"Case series{by}: {report.overall.figure('procedures').value} ended procedure(s){span}; "
        f"unit: {report.unit} (the Unit column says which each figure counts)"
    )
