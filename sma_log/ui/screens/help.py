"""The keys of the screen in front of you (F1 or ?), generated from its bindings.

Nothing here is written by hand: the list is read from the screen's own bindings
(and the app's), so it cannot drift from what the keys do. A screen may add a few
lines for keys that are not its own bindings (Enter on a table row) in
``HELP_NOTES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from ..modals.base import Dialog


@dataclass(frozen=True)
class KeyHelp:
    """One action and every key that runs it."""

    keys: tuple[str, ...]
    description: str
    explanation: str
    shown: bool  # shown in the footer or key legend


def _declared(node: Any) -> set[tuple[str, str]]:
    """(key, action) of the bindings the app's own classes declare on ``node``'s class.

    Textual's generic screen keys (tab, shift+tab, ^c copy) are left out of the
    list; a screen that wants them explained names them in ``HELP_NOTES``.
    """
    out: set[tuple[str, str]] = set()
    for cls in type(node).__mro__:
        if cls.__module__.startswith("textual"):
            continue
        for b in cls.__dict__.get("BINDINGS", ()):
            if isinstance(b, Binding):
                out.update((k.strip(), b.action) for k in b.key.split(","))
            else:
                out.update((k.strip(), b[1]) for k in b[0].split(","))
    return out


def _bindings_of(node: Any) -> list[tuple[str, Binding]]:
    """A node's own bindings in the order they were declared (all keys of each)."""
    declared = _declared(node)
    # BindingsMap iterates (key, Binding).
    return [(k, b) for k, b in node._bindings if (k, b.action) in declared]


def key_display(app: App[Any], binding: Binding) -> str:
    """How a key is written on screen: ``F1``, ``^s``, ``+``, ``Esc``."""
    shown = app.get_key_display(binding)
    if len(shown) > 1 and shown[0] == "f" and shown[1:].isdigit():
        return shown.upper()
    return {"escape": "Esc", "esc": "Esc", "enter": "Enter"}.get(shown.lower(), shown)


def keys_of(
    app: App[Any], node: Any, include_hidden: bool = True, skip_system: bool = True
) -> list[KeyHelp]:
    """The actions bound on ``node`` (a screen or the app), each with its keys.

    Keys bound to the same action with the same description are one line
    (``u / ^z  Undo``). Bindings without a description are left out.
    """
    by_action: dict[tuple[str, str], list[Binding]] = {}
    for _key, binding in _bindings_of(node):
        if skip_system and binding.system:
            continue
        if not binding.description:
            continue
        if not include_hidden and not binding.show:
            continue
        by_action.setdefault((binding.action, binding.description), []).append(binding)
    out: list[KeyHelp] = []
    for (_action, description), bindings in by_action.items():
        keys: list[str] = []
        for b in bindings:
            shown = key_display(app, b)
            if shown not in keys:
                keys.append(shown)
        out.append(
            KeyHelp(
                tuple(keys),
                description,
                next((b.tooltip for b in bindings if b.tooltip), ""),
                any(b.show for b in bindings),
            )
        )
    return out


def help_sections(app: App[Any], screen: Screen[Any]) -> list[tuple[str, list[KeyHelp]]]:
    """What the help screen lists for ``screen``: its keys, then the app's."""
    own = keys_of(app, screen)
    notes = [KeyHelp((k,), d, e, False) for k, d, e in getattr(screen, "HELP_NOTES", ())]
    everywhere = keys_of(app, app)
    palette = app.COMMAND_PALETTE_BINDING
    if app.ENABLE_COMMAND_PALETTE and palette:
        shown = key_display(app, Binding(palette, "command_palette"))
        everywhere.append(
            KeyHelp((shown,), "Commands", "Search every command (new, home, report...)", False)
        )
    return [(screen_name(screen), own + notes), ("Everywhere", everywhere)]


def legend_items(app: App[Any], screen: Screen[Any]) -> list[tuple[str, str]]:
    """A screen's shown keys, then the app's (help, quit), for a :class:`KeyLegend`."""
    items = [(k.keys[0], k.description) for k in keys_of(app, screen) if k.shown]
    items += [("/".join(k.keys), k.description) for k in keys_of(app, app) if k.shown]
    return items


def screen_name(screen: Screen[Any]) -> str:
    return getattr(screen, "HELP_TITLE", None) or type(screen).__name__.removesuffix("Screen")


class HelpScreen(Dialog[None]):
    """The keys of the screen under it. Escape (or F1 / ?) closes it."""

    BINDINGS = [
        Binding("escape", "cancel", "Close", id="help.close"),
        Binding("question_mark", "cancel", "Close", show=False, id="help.close.question"),
    ]
    HELP_TITLE = "Help"

    def __init__(self, target: Screen[Any]) -> None:
        super().__init__()
        self.target = target

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog"):
            yield Static(
                Text(f"Keys — {screen_name(self.target)}  (Escape closes)", style="bold"),
                id="help-title",
            )
            yield Static(self._table(), id="help-keys")

    def _table(self) -> Group:
        parts: list[Any] = []
        sections = [(t, items) for t, items in help_sections(self.app, self.target) if items]
        width = max(len(" / ".join(i.keys)) for _, items in sections for i in items)
        # Title, one row a key, a blank row and a heading a further section, the border:
        # a screen with many keys (the live one) in a short terminal gets the keys that
        # work everywhere on one line, so every key of its own shows without scrolling.
        rows = 3 + sum(len(items) for _, items in sections) + 2 * (len(sections) - 1)
        compact = rows > self.app.size.height
        for n, (title, items) in enumerate(sections):
            if n and compact:
                line = Text(title, style="bold underline")
                for item in items:
                    line.append("  ")
                    line.append(" / ".join(item.keys), style="bold")
                    line.append(f" {item.description}")
                parts.append(line)
                continue
            if n:  # the first section is the screen's own, named in the dialog's title
                parts.append(Text("\n" + title, style="bold underline"))
            table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
            table.add_column("key", style="bold", no_wrap=True, width=width)
            table.add_column("what", ratio=1)
            for item in items:
                what = Text(item.description, style="bold")
                if item.explanation and item.explanation != item.description:
                    what.append(f"  {item.explanation}", style="dim")
                table.add_row(Text(" / ".join(item.keys)), what)
            parts.append(table)
        return Group(*parts)

    def lines(self) -> list[str]:
        """The help as plain lines (for tests and for reading aloud)."""
        out: list[str] = []
        for title, items in help_sections(self.app, self.target):
            out.append(title)
            out.extend(f"{' / '.join(i.keys)}  {i.description}" for i in items)
        return out
