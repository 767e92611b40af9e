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

__all__ = ["FigureView", "student_function_status", "NotDoneMessage"]


class FigureView:
    """Owns a Figure and the Image widget that shows it; ``render()`` redraws in place."""

    def __init__(self, fig, dpi: int = 90):
        import ipywidgets as w

        self.fig = fig
        self.dpi = dpi
        self.image = w.Image(format="png")
        self.last_render_seconds: float | None = None
        self.render_count = 0

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
