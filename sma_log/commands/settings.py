"""``sma-log settings``: show or change the settings file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import CommandRefused, Options, format_option


@click.command("settings")
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
@click.option(
    "--score-earliest",
    type=click.FloatRange(0, 5),
    metavar="MIN",
    help="Minutes after the end the 5-minute score may first be taken (0-5; default 4).",
)
@click.option(
    "--missed-after",
    type=click.FloatRange(0, 365),
    metavar="DAYS",
    help="Days after its window a missed follow-up leaves the queue (0-365; default 14); "
    "sma-log followups --status missed still lists it.",
)
# -- learning curves (issue 14): checked by the domain rule (domain/learning.py)
@click.option(
    "--learning-failure",
    type=click.Choice(("first-attempt", "first-pass")),
    help="What a learning curve counts as failure: not a first-attempt success "
    "(default), or not a first-pass success (also a redirection on the first attempt).",
)
@click.option("--learning-p0", type=float, metavar="P", help="Acceptable failure rate (0.10).")
@click.option("--learning-p1", type=float, metavar="P", help="Unacceptable failure rate (0.20).")
@click.option("--learning-alpha", type=float, metavar="A", help="CUSUM type I error α (0.10).")
@click.option("--learning-beta", type=float, metavar="B", help="CUSUM type II error β (0.10).")
# issue 15: replication
@click.option(
    "--replica",
    metavar="URL",
    help="Where sma-log replicate streams the database: a folder or a URL Litestream "
    "accepts (s3://, sftp://, ...); '' to clear.",
)
# ---- pre-dose time-out and drug timing (issue 14)
@click.option(
    "--timeout-required",
    metavar="WHICH",
    help="Required time-out items: none (the default), label (the preset of --label), us (all "
    "labs before each dose), eu (labs when indicated), or a comma list of consent, skin, "
    "antithrombotic, vp_shunt, platelets, coagulation, urine_protein.",
)
@click.option(
    "--platelets-min", metavar="N", help="Flag a platelet count below N x10^9/L ('' clears)."
)
@click.option("--pt-max", metavar="S", help="Flag a PT above S seconds ('' clears).")
@click.option("--aptt-max", metavar="S", help="Flag an aPTT above S seconds ('' clears).")
@click.option("--inr-max", metavar="R", help="Flag an INR above R ('' clears).")
@click.option(
    "--lab-max-age",
    metavar="DAYS",
    help="Refuse / do not use a lab result older than DAYS days ('' clears: no limit).",
)
@click.option(
    "--drug-warn",
    type=click.FloatRange(0, 360),
    metavar="MIN",
    help="Minutes before the label's drug limit the live screen warns (0-360; default 30).",
)
@format_option("json: one object on stdout (path, whether the file exists, the settings).")
@click.pass_obj
def settings_command(
    opts: Options,
    timezone: str | None,
    locale: str | None,
    label: str | None,
    operator: str | None,
    window_before: float | None,
    window_after: float | None,
    score_earliest: float | None,
    missed_after: float | None,
    learning_failure: str | None,
    learning_p0: float | None,
    learning_p1: float | None,
    learning_alpha: float | None,
    learning_beta: float | None,
    replica: str | None,
    timeout_required: str | None,
    platelets_min: str | None,
    pt_max: str | None,
    aptt_max: str | None,
    inr_max: str | None,
    lab_max_age: str | None,
    drug_warn: float | None,
    fmt: str,
) -> None:
    """Show the settings, or change them (only the options given; the rest is kept).

    The file is $SMA_LOG_CONFIG, else settings.json in the user config folder. A bad
    value is refused with one line and exit code 2, and the file is left unchanged.
    A file that cannot be read as settings (not JSON, a bad value) is refused the
    same way, by this and every command: it is never replaced by defaults.
    """
    from dataclasses import replace

    from ..config import Settings, SettingsRefused, config_path
    from ..domain import schedule

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
        from ..domain.fields import _clean_text  # the same cleaning as every text field

        name = " ".join(_clean_text(operator, multiline=False).split())
        if len(name) > 100:
            raise CommandRefused("--operator: at most 100 characters")
        changes["operator"] = name
    import math

    for option, value in (
        ("--window-before", window_before),
        ("--window-after", window_after),
        ("--score-earliest", score_earliest),
        ("--missed-after", missed_after),
    ):
        if value is not None and not math.isfinite(value):  # FloatRange lets "nan" through
            raise CommandRefused(f"{option}: a number is needed, not {value}")
    if score_earliest is not None:
        changes["score_earliest_min"] = float(score_earliest)
    if missed_after is not None:
        changes["missed_after_days"] = float(missed_after)
    if window_before is not None:
        changes["window_before_hours"] = float(window_before)
    if window_after is not None:
        changes["window_after_hours"] = float(window_after)
    changes.update(
        _learning_changes(learning_failure, learning_p0, learning_p1, learning_alpha, learning_beta)
    )
    if replica is not None:  # issue 15: replication
        changes["replica"] = _check_replica(replica)
    changes.update(
        _predose_changes(
            timeout_required,
            {
                "platelets_min": ("--platelets-min", platelets_min),
                "pt_max_s": ("--pt-max", pt_max),
                "aptt_max_s": ("--aptt-max", aptt_max),
                "inr_max": ("--inr-max", inr_max),
                "lab_max_age_days": ("--lab-max-age", lab_max_age),
            },
            drug_warn,
        )
    )
    path = config_path()
    try:
        current = opts.settings
    except SettingsRefused as exc:
        # A bad value is mended by giving that setting anew (every other key must be
        # good); a file that is not JSON is never replaced.
        if exc.key is None or exc.key not in changes:
            raise
        current = Settings.load(path, replacing=changes)
    if changes:
        current = replace(current, **changes)
        problem = current.learning_problem()  # p0 < p1 with the kept values
        if problem:
            raise CommandRefused(f"learning curves: {problem}")
        current.save(path, replacing=changes)
        opts._settings = current
        if fmt == "text":
            click.echo(f"Saved {path}")
    if fmt == "json":
        _show_json(current, path, saved=bool(changes))
    else:
        _show_settings(current, path)


def _learning_changes(
    failure: str | None,
    p0: float | None,
    p1: float | None,
    alpha: float | None,
    beta: float | None,
) -> dict[str, Any]:
    """The learning-curve settings given, each checked by the domain rule."""
    from ..domain import learning

    changes: dict[str, Any] = {}
    if failure is not None:
        changes["learning_failure"] = failure
    for option, name, value in (
        ("--learning-p0", "p0", p0),
        ("--learning-p1", "p1", p1),
        ("--learning-alpha", "alpha", alpha),
        ("--learning-beta", "beta", beta),
    ):
        if value is None:
            continue
        problem = learning.parameter_problem(name, value)
        if problem:
            raise CommandRefused(f"{option}: {problem}")
        changes[f"learning_{name}"] = float(value)
    return changes


def _predose_changes(
    required: str | None, limits: dict[str, tuple[str, str | None]], warn: float | None
) -> dict[str, Any]:
    """The pre-dose block's changes (issue 14); a bad value is refused with one line."""
    import math

    from ..config import _OPTIONAL_RANGES
    from ..domain import predose

    changes: dict[str, Any] = {}
    if required is not None:
        text = required.strip().lower()
        try:
            predose.required_items(text, "eu")
        except ValueError as exc:
            raise CommandRefused(f"--timeout-required: {exc}") from None
        changes["timeout_required"] = text or "none"
    for key, (option, raw) in limits.items():
        if raw is None:
            continue
        if not raw.strip() or raw.strip().lower() in ("none", "null"):
            changes[key] = None
            continue
        low, high = _OPTIONAL_RANGES[key]
        try:
            value = float(raw.strip().replace(",", "."))
        except ValueError:
            raise CommandRefused(f"{option}: a number is needed, not {raw[:30]!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise CommandRefused(f"{option}: {raw.strip()} is outside {low:g}-{high:g}")
        changes[key] = value
    if warn is not None:
        if not math.isfinite(warn):
            raise CommandRefused(f"--drug-warn: a number is needed, not {warn}")
        changes["drug_warn_min"] = float(warn)
    return changes


def _check_locale(value: str) -> str:
    from ..config import locale_problem
    from ..domain import schedule

    problem = locale_problem(value)
    if problem:
        raise CommandRefused(f"--locale: {problem}")
    return schedule.resolve_locale(value.strip())


def _check_replica(value: str) -> str:
    """issue 15: a folder path (kept absolute) or a URL of a replica type Litestream has."""
    from .litestream import replica_folder

    value = value.strip()
    if not value:
        return ""
    folder = replica_folder(value)
    return value if folder is None or "://" in value else str(folder)


def _show_json(settings: Any, path: Path, saved: bool) -> None:
    """One JSON object: the file, whether it exists (else these are the defaults),
    whether this command saved it, the settings as stored, the time zone in effect."""
    from dataclasses import asdict

    from .followups import _json_text  # escaped when a value holds a terminal control

    document = {
        "path": str(path),
        "exists": path.exists(),
        "saved": saved,
        "settings": asdict(settings),
        "timezone_in_effect": settings.tz_name(),
    }
    click.echo(_json_text(document))


def _show_settings(settings: Any, path: Path) -> None:
    from ..domain import schedule
    from ..domain.text import visible

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
        ("5-min score from", f"{settings.score_earliest_min:g} min after the end"),
        ("missed leave queue", f"{settings.missed_after_days:g} days after the window"),
        ("theme", settings.theme),
        ("replica", settings.replica or "(none: sma-log replicate needs --to)"),  # issue 15
        *_predose_rows(settings),
        # learning curves (issue 14): every chart prints them too
        ("learning failure", settings.learning_failure),
        (
            "learning rates",
            f"p0 {settings.learning_p0:g} (acceptable), p1 {settings.learning_p1:g} "
            f"(unacceptable), α {settings.learning_alpha:g}, β {settings.learning_beta:g}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key + ':':<{width + 2}}{visible(value)}")


def _predose_rows(settings: Any) -> list[tuple[str, str]]:
    """The pre-dose block (issue 14): empty limits say so (never a made-up number)."""
    from ..domain import predose

    def limit(value: float | None, unit: str) -> str:
        return "(not set: no flag)" if value is None else f"{value:g}{unit}"

    required = sorted(
        predose.required_items(settings.timeout_required, settings.label),
        key=predose.ITEMS.index,
    )
    return [
        ("time-out required", f"{settings.timeout_required}: {', '.join(required) or 'none'}"),
        ("platelets min", limit(settings.platelets_min, " x10^9/L")),
        ("PT max", limit(settings.pt_max_s, " s")),
        ("aPTT max", limit(settings.aptt_max_s, " s")),
        ("INR max", limit(settings.inr_max, "")),
        (
            "lab max age",
            "(not set: no limit)"
            if settings.lab_max_age_days is None
            else f"{settings.lab_max_age_days:g} days",
        ),
        ("drug warning", f"{settings.drug_warn_min:g} min before the label limit"),
    ]
