"""Make nbgrader's feedback page read as feedback: each check named, long messages wrapped.

nbgrader's feedback template lists every grade cell of a notebook as "Test cell (Score: ...)", so a
page with twenty checks shows twenty identical lines, and its ``<pre>`` blocks do not wrap, so a long
failure message runs off the right edge. :func:`polish` rewrites the rendered page in place: each
summary line names its grade cell (``test_backward_bias``), and preformatted text wraps. It changes
nothing else (the page was made inert before rendering, see ``neutralise``).

:class:`FeedbackHTMLExporter` is the exporter nbgrader renders the pages with: nbconvert's own, minus
two costs that add up when one process renders many pages."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbconvert.exporters.html as html_exporter_module
from bs4 import BeautifulSoup
from jinja2 import BytecodeCache
from nbconvert.exporters import HTMLExporter

_UNNAMED = re.compile(r'<a href="#([A-Za-z0-9_\-]+)">(Test cell|Coding free-response|Written response|Task)</a>')
_KIND = {"Test cell": "", "Coding free-response": " (code)", "Written response": " (written answer)",
         "Task": " (task)"}
STYLE = ("<style>/* backproplab */ pre, .output_text pre, .output_subarea pre {white-space: pre-wrap; "
         "overflow-wrap: anywhere;} #toc code {font-size: 95%;}</style>")


def polish_text(page: str) -> str:
    page = _UNNAMED.sub(lambda m: f'<a href="#{m.group(1)}"><code>{html.escape(m.group(1))}</code></a>'
                                  f'{_KIND[m.group(2)]}', page)
    if "/* backproplab */" not in page:
        page = page.replace("</head>", STYLE + "\n</head>", 1)
    return page


def polish(path: Path) -> None:
    path = Path(path)
    path.write_text(polish_text(path.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")


# --- the exporter of the feedback phase ---------------------------------------------------------------

# Elements nbconvert's accessibility pass (HTMLExporter.from_notebook_node) changes: images without alt
# text, and JupyterLab's cell input and output wrappers (given a tabindex).
_SOUP_WORK = re.compile(r"<img\b|jp-Cell-inputWrapper|jp-OutputArea-output")


class _MemoryBytecode(BytecodeCache):
    """Jinja's compiled templates, kept in this process (keyed by template name and source checksum)."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


_COMPILED = _MemoryBytecode()


class _Untouched:
    """What nbconvert's accessibility pass sees of a page it would not change: ``select`` finds nothing
    and ``str`` is the page as rendered."""

    def __init__(self, text: str) -> None:
        self.text = text

    def select(self, selector: str) -> list:
        return []

    def __str__(self) -> str:
        return self.text


def _soup_if_needed(text: str, features: str | None = None):
    return BeautifulSoup(text, features=features) if _SOUP_WORK.search(text) else _Untouched(text)


class FeedbackHTMLExporter(HTMLExporter):
    """nbconvert's ``HTMLExporter`` for nbgrader's feedback pages (``c.GenerateFeedback.exporter_class``),
    with two costs of making many pages in one process removed (the grader's feedback phase renders
    each slot's pages in one process):

    * the templates are compiled once per process (:class:`_MemoryBytecode`), not once per page;
    * nbconvert's accessibility pass parses the whole page with BeautifulSoup's pure-Python parser to
      add alt text to images and a tabindex to JupyterLab's cell wrappers, then prints it again: about
      half of a page's time. A page with none of those elements (a feedback page has no images: its
      outputs were made inert) is left as rendered; any other page goes through the pass as before.
    """

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = _COMPILED
        return environment

    def from_notebook_node(self, nb, resources=None, **kw):
        real = html_exporter_module.BeautifulSoup
        html_exporter_module.BeautifulSoup = _soup_if_needed
        try:
            return super().from_notebook_node(nb, resources, **kw)
        finally:
            html_exporter_module.BeautifulSoup = real
