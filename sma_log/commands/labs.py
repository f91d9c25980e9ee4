"""``sma-log labs``: a patient's pre-dose laboratory results (issue 14).

``add`` one result, ``import`` a lab export (CSV), ``list`` a patient's results. Every
value goes through the domain's rules (:func:`sma_log.domain.predose.parse_lab`), the
same as a result typed at the bedside or on the patient page: a date in the future, a
result older than the site's limit or a platelet count of −3 is refused with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import EXIT_REFUSED, CommandRefused, Options, format_option, site_timezone


@click.group("labs")
def labs() -> None:
    """Pre-dose lab results: platelets, PT, aPTT, INR, spot urine protein."""


def _patient(store: Any, code: str) -> Any:
    patient = store.find_patient(code)
    if patient is None:
        raise CommandRefused(f"No patient with study code {code!r}")
    return patient


@labs.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("study_code")
@click.argument("test")
@click.argument("value")
@click.argument("taken_on", metavar="DATE")
@click.option("--unit", metavar="UNIT", help="The value's unit if not the canonical one.")
@click.pass_obj
def add(
    opts: Options, study_code: str, test: str, value: str, taken_on: str, unit: str | None
) -> None:
    """Add one result: TEST is platelets, pt, aptt, inr or urine_protein; DATE YYYY-MM-DD.

    Units: platelets 10^9/L (10^3/uL accepted), PT and aPTT seconds, INR a ratio, urine
    protein g/L (mg/dL and mg/L converted).
    """
    from ..domain.fields import ValidationError
    from ..storage import predose as stored
    from ..storage.store import Store

    settings = opts.settings
    tz = site_timezone(settings)
    with Store.open(opts.db_path, opts.user) as store:
        patient = _patient(store, study_code)
        try:
            row = stored.add_lab(
                store,
                patient["id"],
                test,
                value,
                taken_on,
                unit=unit,
                source="cli",
                rules=settings.predose_rules(),
                tz=tz,
            )
        except ValidationError as exc:
            raise CommandRefused(exc.message) from None
    click.echo(
        f"Added {row['test']} {row['value']:g} {row['unit']} of {row['taken_on']} "
        f"for {patient['study_code']}"
    )


@labs.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row; add nothing.")
@click.pass_obj
def import_labs(opts: Options, path: Path, dry_run: bool) -> None:
    """Add the results of a lab export: a CSV with a header naming study_code, test,
    value, unit (optional) and date columns. Each bad row is refused with its line
    number (exit code 2); the good rows are added; a result already stored is not added
    twice, so the same file can be imported again after fixing it."""
    from ..importer import import_lab_csv
    from ..storage.store import Store

    settings = opts.settings
    tz = site_timezone(settings)
    with Store.open(opts.db_path, opts.user) as store:
        result = import_lab_csv(store, path, settings.predose_rules(), tz, dry_run=dry_run)
    verb = "would add" if dry_run else "added"
    click.echo(
        f"{path.name}: {verb} {result.added}, already stored {result.already}, "
        f"refused {len(result.refused)}"
    )
    for line, why in result.refused:
        click.echo(f"  line {line}: {why}")
    if result.refused:
        raise SystemExit(EXIT_REFUSED)


@labs.command("list")
@click.argument("study_code")
@format_option("json: one object per result on a JSON array.")
@click.pass_obj
def list_labs(opts: Options, study_code: str, fmt: str) -> None:
    """A patient's results (not voided), newest first."""
    import json

    from ..commands.common import open_for_reading
    from ..domain import vocab
    from ..domain.text import visible
    from ..storage import predose as stored

    with open_for_reading(opts.db_path, opts.user) as store:
        patient = _patient(store, study_code)
        rows = stored.patient_labs(store, patient["id"])
    if fmt == "json":
        keys = ("id", "test", "value", "unit", "taken_on", "source")
        click.echo(json.dumps([{k: r[k] for k in keys} for r in rows], indent=1))
        return
    if not rows:
        click.echo(f"{patient['study_code']}: no lab results")
        return
    for r in rows:
        click.echo(
            f"{r['taken_on']}  {vocab.label(vocab.LAB_TESTS, r['test']):<45} "
            f"{r['value']:g} {r['unit']}  ({visible(str(r['source']))})"
        )
