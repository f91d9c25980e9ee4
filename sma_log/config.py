"""Where files live and the user's settings.

The default database lives in the platformdirs user data directory (so it follows
each OS's conventions: ``~/.local/share/sma-log`` on Linux); ``--db`` or
``SMA_LOG_DB`` chooses another. Settings are a small JSON file in the user config
directory, written 0600 and replaced atomically.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

APP_NAME = "sma-log"
DB_ENV = "SMA_LOG_DB"
CONFIG_ENV = "SMA_LOG_CONFIG"


def default_db_path() -> Path:
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "sma-log.db"


def config_path() -> Path:
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.json"


class SettingsRefused(Exception):
    """The settings file cannot be used: one line naming the file, nothing changed.

    Raised on load (unreadable file, not JSON, not an object, not UTF-8, a bad value)
    and by :meth:`Settings.save` when the file on disk is such a file: a file the
    user edited by hand is never replaced by defaults. ``key`` is the setting whose
    value was refused (None when the file itself cannot be read).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


#: How a refusal ends: the file is neither used nor replaced.
_ADVICE = "fix or remove the file (nothing was changed)"

#: The ``sma-log settings`` option that sets each key (the theme is chosen in the app).
_OPTIONS = {
    "operator": "--operator NAME",
    "timezone": "--timezone NAME",
    "locale": "--locale L",
    "label": "--label eu|us",
    "window_before_hours": "--window-before H",
    "window_after_hours": "--window-after H",
    "score_earliest_min": "--score-earliest MIN",
    "missed_after_days": "--missed-after DAYS",
    # learning curves (issue 14)
    "learning_failure": "--learning-failure first-attempt|first-pass",
    "learning_p0": "--learning-p0 P",
    "learning_p1": "--learning-p1 P",
    "learning_alpha": "--learning-alpha A",
    "learning_beta": "--learning-beta B",
    # issue 15: replication
    "replica": "--replica URL",
    # pre-dose time-out and drug timing (issue 14)
    "timeout_required": "--timeout-required label|us|eu|none|ITEMS",
    "platelets_min": "--platelets-min N",
    "pt_max_s": "--pt-max S",
    "aptt_max_s": "--aptt-max S",
    "inr_max": "--inr-max R",
    "lab_max_age_days": "--lab-max-age DAYS",
    "drug_warn_min": "--drug-warn MIN",
}

#: Numeric settings and their allowed range (the same as the ``settings`` options).
_RANGES: dict[str, tuple[float, float]] = {
    "window_before_hours": (0.0, 72.0),
    "window_after_hours": (0.0, 168.0),
    "score_earliest_min": (0.0, 5.0),
    "missed_after_days": (0.0, 365.0),
    "drug_warn_min": (0.0, 360.0),
}
#: Pre-dose settings that are empty (None) unless the site sets them: their allowed
#: range when set. Plausibility only — the app never invents a clinical threshold.
_OPTIONAL_RANGES: dict[str, tuple[float, float]] = {
    "platelets_min": (0.0, 1000.0),
    "pt_max_s": (5.0, 200.0),
    "aptt_max_s": (10.0, 300.0),
    "inr_max": (0.5, 20.0),
    "lab_max_age_days": (0.0, 3650.0),
}


@dataclass
class Settings:
    """User settings, read from a small JSON object.

    Loading is strict: a file that cannot be read, is not UTF-8 JSON, is not an object,
    or holds a known key with a wrong type or an invalid value is refused with ONE line
    (:class:`SettingsRefused`) — never silently replaced by defaults, and never
    overwritten. A missing file means the defaults. Keys this version does not know are
    ignored on load and kept on save (a newer sma-log's settings survive). The theme is
    the one tolerant value: it must be a string, but a name this Textual does not have
    falls back to the default theme without a word (it only changes colours, and
    Textual's theme list changes between versions).
    """

    operator: str = ""
    timezone: str = ""  # IANA name; "" means the system's
    locale: str = "en"
    theme: str = "textual-dark"
    label: str = "eu"  # dosing label: "eu" (SmPC) or "us"
    window_before_hours: float = 12.0
    window_after_hours: float = 24.0
    #: Minutes after the end from which the 5-minute score may be taken (0-5).
    score_earliest_min: float = 4.0
    #: Days after its window closes that a missed follow-up stays in the queue (0-365);
    #: after that it is listed only on request (the queue's m, --status missed).
    missed_after_days: float = 14.0
    # -- learning curves (issue 14): the CUSUM's failure definition, acceptable and
    # unacceptable failure rates and error rates (defaults: domain.learning, with their
    # sources); checked by the domain rule (0 < p0 < p1 < 1, α and β in (0, 1)).
    learning_failure: str = "first-attempt"
    learning_p0: float = 0.10
    learning_p1: float = 0.20
    learning_alpha: float = 0.10
    learning_beta: float = 0.10
    # issue 15: where ``sma-log replicate`` streams the database (a folder path or a URL
    # Litestream accepts; "" means none set). A replica is a full, identified copy.
    replica: str = ""

    # ---- pre-dose time-out and drug timing (issue 14) -------------------------------
    #: Required time-out items: "none", "label" (the preset of ``label``), "us", "eu" or
    #: a comma list of items (:data:`sma_log.domain.predose.ITEMS`).
    #: Default "none": a site switches the time-out's requirements on (an upgrade puts no
    #: new dialog before the first puncture unannounced); flags still ask for a reason.
    timeout_required: str = "none"
    #: Site limits that flag a lab value (empty: no flag; never invented by the app).
    platelets_min: float | None = None
    pt_max_s: float | None = None
    aptt_max_s: float | None = None
    inr_max: float | None = None
    #: A lab result older than this many days is refused / not used (empty: no limit).
    lab_max_age_days: float | None = None
    #: Minutes before the drug's label limit that the live screen warns.
    drug_warn_min: float = 30.0

    @classmethod
    def load(cls, path: Path | None = None, replacing: Iterable[str] = ()) -> Settings:
        """The settings in ``path`` (default: :func:`config_path`); defaults if it is
        missing; :class:`SettingsRefused` if it cannot be used as it is.

        ``replacing``: keys about to be given new values (``sma-log settings
        --timezone``): a bad value there is not refused (it is the way to mend it).
        """
        path = path or config_path()
        data = _read_object(path)
        if data is None:
            return cls()
        return cls.from_mapping(data, path, replacing)

    @classmethod
    def from_mapping(
        cls, data: dict[str, Any], path: Path, replacing: Iterable[str] = ()
    ) -> Settings:
        """Settings from a file's object; :class:`SettingsRefused` names a bad key."""
        known = {f.name for f in fields(cls)} - set(replacing)
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue  # a newer version's key: ignored here, kept on save
            problem, value = _check_value(key, value)
            if problem:
                mend = _OPTIONS.get(key)
                advice = f"fix it with: sma-log settings {mend}, or " if mend else ""
                raise SettingsRefused(
                    f"{path}: {_where(path, key)}{json.dumps(key)}: {problem}; {advice}{_ADVICE}",
                    key=key,
                )
            values[key] = value
        settings = cls(**values)
        problem = settings.learning_problem()
        if problem:  # the four together (p0 < p1): named by the first one in the file
            key = next((k for k in _LEARNING_RATES if k in data), "learning_p0")
            raise SettingsRefused(
                f"{path}: {_where(path, key)}{problem}; fix it with: sma-log settings "
                f"{_OPTIONS[key]}, or {_ADVICE}",
                key=key,
            )
        return settings

    def save(self, path: Path | None = None, replacing: Iterable[str] = ()) -> Path:
        """Write the settings (0600, atomically). Keys of a newer version kept; a file
        that cannot be read as settings is refused (:class:`SettingsRefused`), never
        replaced; so is one with a bad value, unless its key is in ``replacing``."""
        path = path or config_path()
        existing = _read_object(path)  # refuses an unreadable file: never overwritten
        if existing is not None:
            Settings.from_mapping(existing, path, replacing)  # refuses a bad value
        document = {k: v for k, v in (existing or {}).items() if k not in asdict(self)}
        document.update(asdict(self))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(document, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return path

    def learning_problem(self) -> str | None:
        """Why the learning-curve settings cannot make a chart (the domain's sentence)."""
        from .domain import learning

        return learning.parameters_problem(
            self.learning_p0, self.learning_p1, self.learning_alpha, self.learning_beta
        )

    def learning_parameters(self) -> Any:
        """The :class:`sma_log.domain.learning.Parameters` of these settings."""
        from .domain import learning

        return learning.Parameters(
            self.learning_p0, self.learning_p1, self.learning_alpha, self.learning_beta
        )

    def predose_rules(self) -> Any:
        """The time-out's rules (:class:`sma_log.domain.predose.Rules`) of these settings."""
        from .domain import predose

        return predose.Rules(
            required=predose.required_items(self.timeout_required, self.label),
            platelets_min=self.platelets_min,
            pt_max_s=self.pt_max_s,
            aptt_max_s=self.aptt_max_s,
            inr_max=self.inr_max,
            lab_max_age_days=self.lab_max_age_days,
            label=self.label,
            drug_warn_min=self.drug_warn_min,
        )

    def tz_name(self) -> str:
        if self.timezone:
            return self.timezone
        import pendulum

        return str(pendulum.local_timezone().name)


def _read_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if there is no file; else SettingsRefused."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsRefused(f"{path}: {exc.strerror or exc}; {_ADVICE}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SettingsRefused(
            f"{path}: line {line}, column {column}: not UTF-8 (byte 0x{raw[exc.start]:02x}); "
            f"{_ADVICE}"
        ) from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise SettingsRefused(
            f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}; {_ADVICE}"
        ) from None
    except ValueError as exc:  # NaN / Infinity (not JSON), or a number too long
        match = re.search(r"NaN|-?Infinity|\d{1000,}", text)
        at = _line_column(text, match.start()) if match else ""
        raise SettingsRefused(f"{path}: {at}{exc}; {_ADVICE}") from None
    if not isinstance(data, dict):
        at = _line_column(text, len(text) - len(text.lstrip()))
        raise SettingsRefused(
            f"{path}: {at}not a JSON object "
            f'({_json_kind(data)}; settings are {{"key": value, ...}}); {_ADVICE}'
        )
    return data


def _line_column(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    return f"line {line}, column {offset - (text.rfind(chr(10), 0, offset) + 1) + 1}: "


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number"


def _where(path: Path, key: str) -> str:
    """``line N: `` of the key in the file, when it is written plainly there."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return ""
    match = re.search(re.escape(json.dumps(key)) + r"\s*:", text)
    if match is None:
        return ""
    return f"line {text.count(chr(10), 0, match.start()) + 1}: "


def _check_value(key: str, value: Any) -> tuple[str | None, Any]:
    """(None, the value to keep) or (a message for the user, None)."""
    if key in _OPTIONAL_RANGES:
        if value is None:
            return None, None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"a number or null is needed, not {_json_kind(value)}", None
        low, high = _OPTIONAL_RANGES[key]
        if not math.isfinite(value) or not low <= value <= high:
            return f"{value!r} is outside {low:g}-{high:g}", None
        return None, float(value)
    default = getattr(Settings, key)
    if key in _LEARNING_RATES or key == "learning_failure":
        return _check_learning(key, value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"a number is needed, not {_json_kind(value)}", None
        low, high = _RANGES[key]
        if not math.isfinite(value) or not low <= value <= high:
            return f"{value!r} is outside {low:g}-{high:g}", None
        return None, float(value)
    if not isinstance(value, str):
        return f"a string is needed, not {_json_kind(value)}", None
    if key == "label" and value not in ("eu", "us"):
        return f'{json.dumps(value)} is not "eu" or "us"', None
    if key == "timezone" and value:
        from .domain import schedule

        problem = schedule.validate_timezone(value)
        if problem is None and value != value.strip():
            problem = f"{json.dumps(value)} has spaces around the name"
        if problem:
            return problem, None
    if key == "replica" and re.search(r"[\x00-\x1f\x7f]", value):
        return "control characters are not allowed in a replica", None
    if key == "timeout_required":
        from .domain import predose

        try:
            predose.required_items(value, "eu")
        except ValueError as exc:
            return str(exc), None
    if key == "locale":
        problem = locale_problem(value)
        if problem:
            return problem, None
    return None, value


#: The learning-curve rates (issue 14), checked one by one by the domain rule.
_LEARNING_RATES = {
    "learning_p0": "p0",
    "learning_p1": "p1",
    "learning_alpha": "alpha",
    "learning_beta": "beta",
}


def _check_learning(key: str, value: Any) -> tuple[str | None, Any]:
    from .domain import learning

    if key == "learning_failure":
        problem = learning.failure_problem(value)
        return problem, None if problem else value
    problem = learning.parameter_problem(_LEARNING_RATES[key], value)
    return problem, None if problem else float(value)


def locale_problem(value: str) -> str | None:
    """None if pendulum knows the locale ``value`` (or its language), else a message."""
    from pendulum.locales.locale import Locale

    from .domain import schedule

    wanted = value.strip()
    if not wanted:
        return "give a locale such as en, it or de"
    resolved = schedule.resolve_locale(wanted)
    if resolved == "en" and Locale.normalize_locale(wanted).split("_")[0] != "en":
        return f"unknown locale {wanted!r} (e.g. en, it, de, fr, es)"
    return None
