"""The Textual app and its factory (shared by the CLI and the tests)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from ..config import Settings, SettingsRefused
from ..domain.clock import Clock
from ..storage.errors import StorageError
from ..storage.store import Store

STYLES = Path(__file__).parent / "styles"


class SmaLogApp(App[int]):
    """sma-log. Opens the database on mount; refuses a bad file with a message."""

    TITLE = "sma-log"
    CSS_PATH = [
        STYLES / "app.tcss",
        STYLES / "bedside.tcss",
        STYLES / "forms.tcss",
        STYLES / "report.tcss",
    ]
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit"),
        # Help: the keys of the screen in front. F1 everywhere, dialogs included (a
        # priority binding: F1 is never text); ? wherever no text field takes it (not
        # priority, so a ? typed into a field stays a character).
        Binding(
            "f1",
            "help",
            "Help",
            tooltip="The keys of the screen in front (Escape closes)",
            priority=True,
            id="app.help",
        ),
        Binding(
            "question_mark",
            "help",
            "Help",
            tooltip="The keys of the screen in front (Escape closes)",
            id="app.help.question",
        ),
    ]
    # Classes for terminal size: the key legend shows only where there is room.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall"), (50, "-huge")]

    def __init__(
        self,
        db_path: Path,
        *,
        user: str | None = None,
        settings: Settings | None = None,
        clock: Clock | None = None,
        demo: bool = False,
        settings_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings_path = settings_path
        self.db_path = Path(db_path)
        self.user = user
        #: Why the settings file cannot be used (the app then shows only that).
        self.settings_refused: str | None = None
        if settings is None:
            # Read here when not given: a file that cannot be used is refused on mount,
            # never replaced by the defaults.
            try:
                settings = Settings.load(settings_path)
            except SettingsRefused as exc:
                self.settings_refused = str(exc)
        self.settings = settings or Settings()
        self.clock = clock or Clock()
        self.demo = demo
        self._store: Store | None = None
        self._data_version: int | None = None
        if self.settings.theme:
            self.theme = (
                self.settings.theme
                if self.settings.theme in self.available_themes
                else "textual-dark"
            )

    @property
    def store(self) -> Store:
        if self._store is None:
            raise StorageError("The database is not open")
        return self._store

    @property
    def tz(self) -> str:
        return self.settings.tz_name()

    def on_mount(self) -> None:
        if self.settings_refused is not None:
            from .screens.refused import RefusedScreen

            self.push_screen(
                RefusedScreen(self.settings_refused, title="The settings file cannot be used")
            )
            return
        try:
            self._store = Store.open(self.db_path, self.user, clock=self.clock)
        except StorageError as exc:
            from .screens.refused import RefusedScreen

            self.push_screen(RefusedScreen(str(exc)))
            return
        self._store.set_window(self.settings.window_before_hours, self.settings.window_after_hours)
        self._store.set_score_earliest(self.settings.score_earliest_min)
        self._store.set_missed_after(self.settings.missed_after_days)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        # Always home first, even with a procedure in progress (it is home's first
        # line, resumed with Enter or l): a key meant for another screen never lands
        # on the live screen, where every key records. A demo says so on home.
        self.go_home()
        self._data_version = self._store.data_version()
        self.set_interval(1.0, self._poll_changes)

    def _remember_theme(self, theme: Any) -> None:
        if self.settings.theme != theme.name:
            self.settings.theme = theme.name
            self._save_settings()

    def _save_settings(self) -> None:
        try:
            self.settings.save(self.settings_path)
        except OSError as exc:
            self.notify(f"Settings not saved: {exc.strerror}", severity="warning")
        except SettingsRefused as exc:  # the file was broken meanwhile: kept as it is
            self.notify(f"Settings not saved: {exc}", severity="warning", markup=False)

    def action_settings(self) -> None:
        from .modals.settings import SettingsDialog

        def done(new: Settings | None) -> None:
            if new is None:
                return
            self.settings = new
            self._save_settings()
            if self._store is not None:
                self._store.set_window(new.window_before_hours, new.window_after_hours)
                self._store.set_score_earliest(new.score_earliest_min)
                self._store.set_missed_after(new.missed_after_days)
                if new.operator:
                    self._store.user = new.operator
            self.notify("Settings saved")
            refresh = getattr(self.screen, "refresh_from_store", None)
            if refresh is not None:
                refresh()

        self.push_screen(SettingsDialog(self.settings), done)

    def open_procedure(self, proc_id: str) -> None:
        from .screens.procedure import ProcedureScreen

        self.push_screen(ProcedureScreen(proc_id))

    def _poll_changes(self) -> None:
        """Another terminal on the same file committed: redraw from the database."""
        if self._store is None:
            return
        try:
            version = self._store.data_version()
        except Exception:
            return
        if version != self._data_version:
            self._data_version = version
            # Another process wrote (this connection's own commits leave data_version
            # as it is): a screen that can read in the background does (the queue).
            refresh = getattr(self.screen, "refresh_in_background", None) or getattr(
                self.screen, "refresh_from_store", None
            )
            if refresh is not None:
                refresh()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if self._store is None:
            return
        yield SystemCommand("New procedure", "Find or create a patient and start", self._cmd_new)
        yield SystemCommand("Home", "Back to the home screen", self._cmd_home)
        yield SystemCommand("Follow-ups", "The nurses' queue", self._cmd_followups)
        yield SystemCommand("Report", "Case-series figures and plots", self._cmd_report)
        yield SystemCommand(
            "Settings", "Operator, time zone, dosing label, window", self.action_settings
        )

    def _cmd_new(self) -> None:
        from .screens.start import StartScreen

        self.push_screen(StartScreen())

    def _cmd_followups(self) -> None:
        from .screens.followups import FollowupScreen

        self.push_screen(FollowupScreen())

    def _cmd_report(self) -> None:
        from .screens.report import ReportScreen

        self.push_screen(ReportScreen())

    def _cmd_home(self) -> None:
        self.go_home()

    def go_home(self, message: str | None = None) -> None:
        """Back to the home screen (built the first time it is needed).

        ``message`` goes on home's status line (what just happened, naming the patient).
        """
        from .screens.home import HomeScreen

        if not any(isinstance(s, HomeScreen) for s in self.screen_stack):
            while len(self.screen_stack) > 1:
                self.pop_screen()
            self.push_screen(HomeScreen(message))
            return
        while not isinstance(self.screen, HomeScreen):
            self.pop_screen()
        if message:
            self.screen.say(message)

    def action_help(self) -> None:
        """F1 or ?: the keys of the screen in front; pressed again, closes the help."""
        from .screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.screen))

    def on_unmount(self) -> None:
        if self._store is not None:
            self._store.close()


def create_app(
    db_path: Path,
    *,
    user: str | None = None,
    settings: Settings | None = None,
    clock: Clock | None = None,
    demo: bool = False,
    settings_path: Path | None = None,
) -> SmaLogApp:
    """Build the app; the CLI and the tests both start here.

    ``settings_path`` is where changed settings are saved (default: the user config
    file); tests pass a path in tmp_path.
    """
    return SmaLogApp(
        db_path, user=user, settings=settings, clock=clock, demo=demo, settings_path=settings_path
    )
