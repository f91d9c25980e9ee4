"""Large figures for the bedside: a block font that grows with the terminal.

Textual's Digits draws 3 rows of thin lines; on a bedside monitor read from a metre
away the timer and the attempt count should be solid and as large as the terminal
allows. This widget draws its value in a 5-pixel-high block font at the largest
scale that fits its box (each pixel two cells wide, so it looks square; one cell
wide when the box is narrow, e.g. an hour-long timer at 80 columns), and falls back
to Digits' 3-row font only when even that does not fit.
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


#: (rows per pixel, cells per pixel), largest first: what :meth:`BigText.scale` tries.
SCALES: tuple[tuple[int, int], ...] = ((4, 8), (3, 6), (2, 4), (1, 2), (1, 1))


def render_big(text: str, scale: int, pixel_width: int | None = None) -> list[str]:
    """The rows that draw ``text`` at ``scale`` (1 = 5 rows, 2 = 10 rows, ...).

    Each pixel is ``pixel_width`` cells wide (default ``2 * scale``: square pixels).
    """
    px = 2 * scale if pixel_width is None else pixel_width
    rows = [""] * GLYPH_ROWS
    for i, ch in enumerate(text):
        glyph = FONT.get(ch, FONT[" "])
        for r in range(GLYPH_ROWS):
            pixels = "".join("█" * px if p == "#" else " " * px for p in glyph[r])
            gap = " " * px if i < len(text) - 1 else ""
            rows[r] += pixels + gap
    return [row for row in rows for _ in range(scale)]


def big_width(text: str, scale: int, pixel_width: int | None = None) -> int:
    return len(render_big(text, scale, pixel_width)[0]) if text else 0


class BigText(Widget):
    """A value drawn as large as its box allows (block font, or Digits' 3 rows)."""

    DEFAULT_CSS = """
    BigText { width: 100%; height: 5; content-align: center middle; }
    """

    value: reactive[str] = reactive("", layout=False)

    def __init__(self, value: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.value = value

    def update(self, value: str) -> None:
        self.value = value

    def fit(self) -> tuple[int, int]:
        """(scale, pixel width) of the block font that fits the box; (0, 0) if none."""
        width, height = self.content_size.width, self.content_size.height
        for scale, px in SCALES:
            if height >= GLYPH_ROWS * scale and width >= big_width(self.value, scale, px):
                return scale, px
        return 0, 0

    def scale(self) -> int:
        """0 for the 3-row font, else the block font's scale that fits."""
        return self.fit()[0]

    def render(self) -> RenderableType:
        scale, px = self.fit()
        if scale == 0:
            return DigitsRenderable(self.value, "bold")
        rows = render_big(self.value, scale, px)
        return Text("\n".join(rows), style="bold", justify="center")
