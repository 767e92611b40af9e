"""What every widget shares: a matplotlib figure rendered into an ``ipywidgets.Image``.

Widgets keep one ``Figure`` and its artists for their whole life; an update changes the artists'
data and re-renders the canvas to PNG. That needs no matplotlib front-end extension (it works in
JupyterLab, Notebook 7, VS Code and Binder alike) and it can be driven from tests without a browser:
set a control's value, then read the artists or the PNG bytes.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

__all__ = ["BlitView", "FigureView", "student_function_status", "NotDoneMessage"]


class FigureView:
    """Owns a Figure and the Image widget that shows it; ``render()`` redraws in place.

    Every render is timed (``last_render_seconds``, for tests and benchmarks). Students do not see the
    timing unless ``show_timing=True`` is asked for: :meth:`timing_note` is then the text to show.
    """

    def __init__(self, fig, dpi: int = 90, *, show_timing: bool = False):
        import ipywidgets as w

        self.fig = fig
        self.dpi = dpi
        self.image = w.Image(format="png")
        self.last_render_seconds: float | None = None
        self.render_count = 0
        self.show_timing = show_timing

    def timing_note(self, seconds: float | None = None) -> str:
        """``"<small>redrawn in N ms</small>"`` when ``show_timing`` is on, else an empty string.

        ``seconds`` defaults to the last render's time; a widget passes its whole update's time.
        """
        seconds = self.last_render_seconds if seconds is None else seconds
        if not self.show_timing or seconds is None:
            return ""
        return f"<small>redrawn in {1000 * seconds:.0f} ms</small>"

    def render(self) -> bytes:
        start = time.perf_counter()
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=self.dpi)
        png = buf.getvalue()
        self.image.value = png
        self.last_render_seconds = time.perf_counter() - start
        self.render_count += 1
        return png


class NotDoneMessage(Exception):
    """Raised by a widget's callback when the student's function is not written yet."""


def student_function_status(fn: Callable | None, name: str, probe: Callable[[Callable], object]) -> str | None:
    """Run ``probe(fn)``; return ``None`` if it works, else a sentence telling the student what to do."""
    if fn is None:
        return f"Pass your `{name}` to this widget to see it in action."
    try:
        probe(fn)
    except NotImplementedError:
        return f"`{name}` is not written yet: finish that exercise above, run its cell, then run this cell again."
    except Exception as exc:  # the student's code crashed on a tiny input: say so, do not show a traceback
        return f"`{name}` raised {type(exc).__name__}: {exc}. Fix it above, then run this cell again."
    return None


class BlitView(FigureView):
    """A ``FigureView`` that redraws only the artists that change.

    The axes, ticks and labels are drawn once into a background buffer; each ``render()`` restores
    it, draws the ``dynamic`` artists on top and encodes the PNG. ``invalidate()`` asks for a full
    redraw (after axis limits change). Same interface as ``FigureView``.
    """

    def __init__(self, fig, dynamic, dpi: int = 80, *, show_timing: bool = False):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        super().__init__(fig, dpi=dpi, show_timing=show_timing)
        fig.set_dpi(dpi)
        self.canvas = FigureCanvasAgg(fig)
        self.dynamic = list(dynamic)
        for artist in self.dynamic:
            artist.set_animated(True)
            artist.set_in_layout(False)  # changing texts must not move the axes
        self._background = None
        self.full_redraws = 0

    def invalidate(self) -> None:
        self._background = None

    def render(self) -> bytes:
        import numpy as np
        from PIL import Image

        start = time.perf_counter()
        if self._background is None:
            self.canvas.draw()  # everything but the animated artists
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
            self.full_redraws += 1
        else:
            self.canvas.restore_region(self._background)
        renderer = self.canvas.get_renderer()
        for artist in self.dynamic:
            if artist.get_visible():
                artist.draw(renderer)
        buf = io.BytesIO()
        Image.fromarray(np.asarray(self.canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
        png = buf.getvalue()
        self.image.value = png
        self.last_render_seconds = time.perf_counter() - start
        self.render_count += 1
        return png
