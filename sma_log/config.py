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


@dataclass
class Settings:
    """User settings. Unknown keys in the file are ignored; bad values fall back."""

    operator: str = ""
    timezone: str = ""  # IANA name; "" means the system's
    locale: str = "en"
    theme: str = "textual-dark"
    label: str = "eu"  # dosing label: "eu" (SmPC) or "us"
    window_before_hours: float = 12.0
    window_after_hours: float = 24.0
    #: Minutes after the end from which the 5-minute score may be taken (0-5).
    score_earliest_min: float = 4.0

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or config_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        defaults = cls()
        for key, value in data.items():
            if key in known and isinstance(value, type(getattr(defaults, key))):
                if isinstance(value, float) and not math.isfinite(value):
                    continue  # NaN or infinity in a hand-edited file: keep the default
                if key == "score_earliest_min" and not 0 <= value <= 5:
                    continue  # out of range in a hand-edited file: keep the default
                values[key] = value
        return cls(**values)

    def save(self, path: Path | None = None) -> Path:
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(self), fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return path

    def tz_name(self) -> str:
        if self.timezone:
            return self.timezone
        import pendulum

        return str(pendulum.local_timezone().name)
