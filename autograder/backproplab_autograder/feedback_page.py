"""Make nbgrader's feedback page read as feedback: each check named, long messages wrapped.

nbgrader's feedback template lists every grade cell of a notebook as "Test cell (Score: ...)", so a
page with twenty checks shows twenty identical lines, and its ``<pre>`` blocks do not wrap, so a long
failure message runs off the right edge. :func:`polish` rewrites the rendered page in place: each
summary line names its grade cell (``test_backward_bias``), and preformatted text wraps. It changes
nothing else (the page was made inert before rendering, see ``neutralise``)."""

from __future__ import annotations

import html
import re
from pathlib import Path

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
