"""Large figures for the bedside: a block font that grows with the terminal.

Textual's Digits draws 3 rows; on a bedside monitor read from a metre away the timer
and the attempt count should be as large as the terminal allows. This widget draws
its value in a 5-pixel-high block font at the largest scale that fits its box (each
pixel two cells wide, so it looks square), and falls back to Digits' 3-row font when
even the smallest scale does not fit.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.reactive import reactive
from textual.renderables.digits import Digits as DigitsRenderable
from textual.widget import Widget

# 3x5 pixels per glyph; "#" is on.
FONT: dict[str, tuple[str, ...]] = {
    "0": ("###", "# #", "# #", "# #", "###"),
    "1": (" # ", "## ", " # ", " # ", "###"),
    "2": ("###", "  #", "###", "#  ", "###"),
    "3": ("###", "  #", " ##", "  #", "###"),
    "4": ("# #", "# #", "###", "  #", "  #"),
    "5": ("###", "#  ", "###", "  #", "###"),
    "6": ("###", "#  ", "###", "# #", "###"),
    "7": ("###", "  #", "  #", "  #", "  #"),
    "8": ("###", "# #", "###", "# #", "###"),
    "9": ("###", "# #", "###", "  #", "###"),
    ":": (" ", "#", " ", "#", " "),
    " ": ("  ", "  ", "  ", "  ", "  "),
}
GLYPH_ROWS = 5


def render_big(text: str, scale: int) -> list[str]:
    """The rows that draw ``text`` at ``scale`` (1 = 5 rows, 2 = 10 rows, ...)."""
    rows = [""] * GLYPH_ROWS
    for i, ch in enumerate(text):
        glyph = FONT.get(ch, FONT[" "])
        for r in range(GLYPH_ROWS):
            pixels = "".join("█" * 2 * scale if p == "#" else " " * 2 * scale for p in glyph[r])
            gap = " " * 2 * scale if i < len(text) - 1 else ""
            rows[r] += pixels + gap
    return [row for row in rows for _ in range(scale)]


def big_width(text: str, scale: int) -> int:
    return len(render_big(text, scale)[0]) if text else 0


class BigText(Widget):
    """A value drawn as large as its box allows (block font, or Digits' 3 rows)."""

    DEFAULT_CSS = """
    BigText { width: 100%; height: 3; content-align: center middle; }
    """

    value: reactive[str] = reactive("", layout=False)

    def __init__(self, value: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.value = value

    def update(self, value: str) -> None:
        self.value = value

    def scale(self) -> int:
        """0 for the 3-row font, else the block font's scale that fits."""
        width, height = self.content_size.width, self.content_size.height
        for scale in (4, 3, 2, 1):
            if height >= GLYPH_ROWS * scale and width >= big_width(self.value, scale):
                return scale
        return 0

    def render(self) -> RenderableType:
        scale = self.scale()
        if scale == 0:
            return DigitsRenderable(self.value, "bold")
        return Text("\n".join(render_big(self.value, scale)), style="bold", justify="center")
