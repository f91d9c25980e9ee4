"""``sma-log settings``: show or change the settings file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import CommandRefused, Options


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
) -> None:
    """Show the settings, or change them (only the options given; the rest is kept).

    The file is $SMA_LOG_CONFIG, else settings.json in the user config folder. A bad
    value is refused with one line and exit code 2, and the file is left unchanged.
    """
    from dataclasses import replace

    from ..config import config_path
    from ..domain import schedule

    current = opts.settings
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
    ):
        if value is not None and not math.isfinite(value):  # FloatRange lets "nan" through
            raise CommandRefused(f"{option}: a number is needed, not {value}")
    if score_earliest is not None:
        changes["score_earliest_min"] = float(score_earliest)
    if window_before is not None:
        changes["window_before_hours"] = float(window_before)
    if window_after is not None:
        changes["window_after_hours"] = float(window_after)
    path = config_path()
    if changes:
        current = replace(current, **changes)
        current.save(path)
        opts._settings = current
        click.echo(f"Saved {path}")
    _show_settings(current, path)


def _check_locale(value: str) -> str:
    from pendulum.locales.locale import Locale

    from ..domain import schedule

    wanted = value.strip()
    if not wanted:
        raise CommandRefused("--locale: give a locale such as en, it or de")
    resolved = schedule.resolve_locale(wanted)
    if resolved == "en" and Locale.normalize_locale(wanted).split("_")[0] != "en":
        raise CommandRefused(f"--locale: unknown locale {wanted!r} (e.g. en, it, de, fr, es)")
    return resolved


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
        ("theme", settings.theme),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key + ':':<{width + 2}}{visible(value)}")
