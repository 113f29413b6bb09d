"""Agg drawing of the report's figures with text work kept between figures (issue 15).

matplotlib's Agg renderer shapes every string (`FT2Font._layout`), measures it
(`get_text_width_height_descent`) and renders every glyph through FreeType anew for each
figure: a new canvas has a new renderer, and matplotlib's text caches live with the renderer. In
a batch job the figures repeat most of their strings (panel labels, scale bars, colour bar
ticks) at the same places; text cost about a third of drawing a montage. `Renderer` keeps, for
the process:

- the layout of a string (glyphs and their offsets) per font, size, dpi and shaping options;
- the width, height and descent of a string per font properties and dpi;
- the line metrics of a font (what `Text._get_layout` reads from its tables) per size and dpi;
- the bitmap of a glyph per font, size, dpi, rotation, load flags, antialiasing and the
  sub-pixel part of its position, moved by the whole-pixel part: FreeType rasterizes an
  outline moved by whole pixels to the same bitmap, moved.

The pixels are what `RendererAgg` draws (tests/unit/test_report_render.py); mathtext and TeX go
the usual way.
"""

from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.ft2font import FT2Font

try:
    from matplotlib.ft2font import RenderMode
except ImportError:  # matplotlib before 3.10: `canvas_class` gives matplotlib's own canvas
    RenderMode = None

LIMIT = 50_000  # entries per cache; past it a cache starts again (a long job of odd strings)
_LAYOUTS: dict = {}
_METRICS: dict = {}
_GLYPHS: dict = {}
_HEIGHTS: dict = {}


def _put(cache: dict, key, value):
    if len(cache) >= LIMIT:
        cache.clear()
    cache[key] = value
    return value


def clear() -> None:
    """Forget every kept layout, metric and glyph."""
    for cache in (_LAYOUTS, _METRICS, _GLYPHS, _HEIGHTS):
        cache.clear()


class Renderer(RendererAgg):
    """`RendererAgg` whose text layouts, metrics and glyph bitmaps outlive it (see above)."""

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if ismath:
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        features = mtext.get_fontfeatures() if mtext is not None else None
        language = mtext.get_language() if mtext is not None else None
        flags = get_hinting_flag()
        size = prop.get_size_in_points()
        try:
            key = (prop.copy(), self.dpi, s, flags, features, language,
                   mpl.rcParams["text.hinting_factor"])  # fmt: skip
            hash(key)
        except TypeError:  # unhashable shaping options: no cache
            key = None
        items = _LAYOUTS.get(key) if key is not None else None
        if items is None:
            font = self._prepare_font(prop)
            items = [(item.ft_object, item.glyph_index, item.x, item.y)
                     for item in font._layout(s, flags=flags, features=features,
                                              language=language)]  # fmt: skip
            if key is not None:
                _put(_LAYOUTS, key, items)
        self._draw_text_glyphs_and_boxes(
            gc, x, y, angle, ((f, size, g, 0, 1, dx, dy) for f, g, dx, dy in items), []
        )

    def _draw_text_glyphs_and_boxes(self, gc, x, y, angle, glyphs, boxes):
        if boxes:  # mathtext's rules: matplotlib's own drawing
            return super()._draw_text_glyphs_and_boxes(gc, x, y, angle, glyphs, boxes)
        cos = math.cos(math.radians(angle))
        sin = math.sin(math.radians(angle))
        flags = get_hinting_flag()
        antialiased = bool(gc.get_antialiased())
        factor = mpl.rcParams["text.hinting_factor"]
        matrices: dict = {}
        for font, size, glyph_index, slant, extend, dx, dy in glyphs:  # dy is upwards
            matrix = matrices.get((slant, extend))
            if matrix is None:
                matrix = matrices[slant, extend] = (
                    (0x10000 * np.array([[cos, -sin], [sin, cos]])
                     @ [[extend, extend * slant], [0, 1]]).round().astype(int)
                )  # fmt: skip
            tx = round(0x40 * (x + dx * cos - dy * sin))
            ty = round(0x40 * (self.height - y + dx * sin + dy * cos))  # FreeType's y is up
            key = (font.fname, factor, size, self.dpi, glyph_index, matrix.data.tobytes(), flags,
                   antialiased, tx % 64, ty % 64)  # fmt: skip
            hit = _GLYPHS.get(key)
            if hit is None:
                font.set_size(size, self.dpi)
                font._set_transform(matrix, [tx % 64, ty % 64])
                bitmap = font._render_glyph(
                    glyph_index, flags, RenderMode.NORMAL if antialiased else RenderMode.MONO
                )
                buffer = np.array(bitmap.buffer)  # a copy: FreeType reuses its slot
                if not antialiased:
                    buffer *= 0xFF
                hit = _put(_GLYPHS, key, (buffer, bitmap.left, bitmap.top))
            buffer, left, top = hit
            left, top = left + tx // 64, top + ty // 64
            # draw_text_image's y is downwards and the bitmap's bottom side
            self._renderer.draw_text_image(
                buffer, left, int(self.height) - top + buffer.shape[0], 0, gc
            )

    def _get_font_height_metrics(self, prop):
        """The line metrics `Text._get_layout` reads from the font's OS/2 or hhea table (in
        its own words: ascent, descent, line gap at the figure's dpi), kept per font
        properties and dpi; (None, None, None) when the font has neither table."""
        from matplotlib.font_manager import fontManager, get_font

        key = (prop.copy(), self.dpi)
        hit = _HEIGHTS.get(key)
        if hit is not None:
            return hit
        font = get_font(fontManager._find_fonts_by_props(prop))
        hit = (None, None, None)
        for table_name, gap, ascent, descent in (
            ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
            ("hhea", "lineGap", "ascent", "descent"),
        ):
            table = font.get_sfnt_table(table_name)
            if table is None:
                continue
            scale = 1 / font.get_sfnt_table("head")["unitsPerEm"] * prop.get_size_in_points()
            scale = scale * self.dpi / 72
            hit = (table[ascent] * scale, -table[descent] * scale, table[gap] * scale)
            break
        return _put(_HEIGHTS, key, hit)

    def get_text_width_height_descent(self, s, prop, ismath):
        if ismath:
            return super().get_text_width_height_descent(s, prop, ismath)
        key = (s, prop.copy(), self.dpi, get_hinting_flag(), mpl.rcParams["text.hinting_factor"])
        hit = _METRICS.get(key)
        if hit is None:
            hit = _put(_METRICS, key, super().get_text_width_height_descent(s, prop, ismath))
        return hit


def canvas_class():
    """`Canvas`, or matplotlib's own `FigureCanvasAgg` where its Agg text internals that
    `Renderer` builds on (matplotlib 3.11) are not there: the same pictures, slower."""
    needed = ("_draw_text_glyphs_and_boxes", "_prepare_font", "get_text_width_height_descent")
    ok = RenderMode is not None and all(hasattr(RendererAgg, name) for name in needed)
    ok = ok and all(hasattr(FT2Font, name) for name in ("_layout", "_render_glyph"))
    return Canvas if ok else FigureCanvasAgg


class Canvas(FigureCanvasAgg):
    """`FigureCanvasAgg` that draws with `Renderer`."""

    def get_renderer(self):
        w, h = self.get_width_height(physical=True)
        key = w, h, self.figure.dpi
        if self._lastKey != key:
            self.renderer = Renderer(w, h, self.figure.dpi)
            self._lastKey = key
        return self.renderer
