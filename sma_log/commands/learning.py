"""``sma-log learning``: per-operator CUSUM and LC-CUSUM of first-attempt (or
first-pass) failure, as text, JSON or CSV (read-only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .common import CommandRefused, Options, format_option, open_for_reading, site_timezone

if TYPE_CHECKING:
    from ..domain.learning import Curve, Parameters

FORMATS = ("text", "json", "csv")
CSV_COLUMNS = (
    "operator",
    "number",
    "procedure_id",
    "started_at",
    "failure",
    "cusum",
    "lc_cusum",
    "failure_definition",
    "p0",
    "p1",
    "alpha",
    "beta",
    "s",
    "h0",
    "h1",
    "lc_h",
)


@click.command("learning")
@click.option("--operator", metavar="NAME", default=None, help="Only this operator's curve.")
@format_option("Text for the terminal, JSON or CSV (one row per procedure) for scripts.", FORMATS)
@click.pass_obj
def learning_command(opts: Options, operator: str | None, fmt: str) -> None:
    """Each operator's learning curve: CUSUM and LC-CUSUM of failure, procedure by
    procedure in start order, and where each limit was first reached.

    \b
    Failure (setting learning_failure): first-attempt = not a first-attempt success
    (CSF not obtained at the first skin insertion); first-pass = not a first-pass
    success (also a redirection on the first attempt). Ended procedures with an
    operator and at least one skin insertion; cancelled starts are not counted.

    \b
    CUSUM: +(1 - s) per failure, -s per success, from 0. At or above h1: the failure
    rate is unacceptable (p1); at or below h0: acceptable (p0). LC-CUSUM (Biau et al.
    2008): max(0, S + ln((1-p0)/(1-p1))) per success, max(0, S + ln(p0/p1)) per
    failure; at or above h = ln((1-β)/α): performance adequate. p0, p1, α, β are the
    settings learning_p0, learning_p1, learning_alpha, learning_beta (sma-log settings).
    """
    from ..domain import learning
    from ..storage.learning import iter_learning_rows, learning_operators

    settings = opts.settings
    try:
        params = settings.learning_parameters()
    except learning.LearningError as exc:  # pragma: no cover - the settings refuse it
        raise CommandRefused(f"settings: {exc}") from None
    definition = settings.learning_failure
    with open_for_reading(opts.db_path, opts.user) as store:
        name = None
        if operator is not None:
            name = _operator(operator, learning_operators(store))
        rows = list(iter_learning_rows(store, name))
    curves = learning.curves(rows, params, definition)
    if fmt == "json":
        _json(curves, params, definition)
    elif fmt == "csv":
        _csv(curves, params, definition)
    else:
        _text(curves, params, definition, site_timezone(settings))


def _operator(wanted: str, known: list[str]) -> str:
    """The operator's name as stored: exact, else the one that matches ignoring case."""
    from ..domain.text import visible

    name = " ".join(wanted.split())
    if name in known:
        return name
    same = [k for k in known if k.casefold() == name.casefold()]
    if len(same) == 1:
        return same[0]
    listed = ", ".join(known) if known else "none"
    raise CommandRefused(
        f"--operator: no charted procedure by {visible(wanted)!r} (operators: {visible(listed)})"
    )


def _definition_text(definition: str) -> str:
    from ..domain.learning import FAILURE_DEFINITIONS

    return dict(FAILURE_DEFINITIONS).get(definition, definition)


def parameters_line(params: Parameters, definition: str) -> str:
    """One line of every value a chart used (every chart must print them)."""
    return (
        f"failure = {definition}; p0 {params.p0:g} (acceptable), p1 {params.p1:g} "
        f"(unacceptable), α {params.alpha:g}, β {params.beta:g}: s {params.s:.4f}, "
        f"h0 {params.h0:.3f}, h1 {params.h1:.3f}; LC-CUSUM h {params.lc_h:.3f}"
    )


def _local(utc: str, tz: str) -> str:
    """A point's start (UTC, whole seconds, ``…Z``) in the site's time, as people read it
    (json and csv keep the UTC form)."""
    from datetime import datetime

    import pendulum

    when = pendulum.instance(datetime.fromisoformat(utc.replace("Z", "+00:00")))
    return str(when.in_timezone(tz).format("YYYY-MM-DD HH:mm"))


def _at(point: Any, tz: str) -> str:
    if point is None:
        return "not reached"
    return f"#{point.number} ({_local(point.started_at, tz)}, {point.procedure_id})"


def _text(curves: list[Curve], params: Parameters, definition: str, tz: str) -> None:
    from ..domain.text import visible

    click.echo(f"Learning curves: {_definition_text(definition)}")
    click.echo(parameters_line(params, definition))
    if not curves:
        click.echo("\nNo charted procedure (ended, with an operator and a skin insertion).")
        return
    for c in curves:
        rate = f"{100 * c.failure_rate:.1f}%" if c.failure_rate is not None else "—"
        click.echo()
        click.echo(f"{visible(c.operator)}: n {c.n}, failures {c.failures} ({rate})")
        click.echo(f"  CUSUM h1 (unacceptable) first reached: {_at(c.h1_crossed, tz)}")
        click.echo(f"  CUSUM h0 (acceptable) first reached:   {_at(c.h0_crossed, tz)}")
        click.echo(f"  LC-CUSUM h (adequate) first reached:   {_at(c.lc_signal, tz)}")
        head = f"started ({tz})"
        width = max(16, len(head))
        click.echo(
            f"  {'#':>4}  {head:<{width}}  {'procedure':<26}  fail  {'CUSUM':>8}  {'LC-CUSUM':>8}"
        )
        for p in c.points:
            click.echo(
                f"  {p.number:>4}  {_local(p.started_at, tz):<{width}}  {p.procedure_id:<26}  "
                f"{p.failure:>4}  {p.cusum:>8.3f}  {p.lc_cusum:>8.3f}"
            )


def _json(curves: list[Curve], params: Parameters, definition: str) -> None:
    import json

    document = {
        "failure_definition": definition,
        "failure_definition_text": _definition_text(definition),
        "parameters": params.as_dict(),
        "operators": [c.as_dict() for c in curves],
    }
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


def _csv(curves: list[Curve], params: Parameters, definition: str) -> None:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    p = params
    fixed = [definition, p.p0, p.p1, p.alpha, p.beta, p.s, p.h0, p.h1, p.lc_h]
    for c in curves:
        for pt in c.points:
            writer.writerow(
                [
                    c.operator,
                    pt.number,
                    pt.procedure_id,
                    pt.started_at,
                    pt.failure,
                    repr(pt.cusum),
                    repr(pt.lc_cusum),
                    *fixed,
                ]
            )
    click.echo(out.getvalue(), nl=False)
