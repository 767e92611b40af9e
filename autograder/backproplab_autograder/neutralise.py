"""What a student wrote reaches the instructor only as inert text.

* **Feedback HTML** (:func:`scrub_notebook`, run by :class:`execute.FeedbackScrub` before nbconvert
  renders nbgrader's feedback page): every output keeps only ``text/plain`` and well-formed
  ``image/png`` / ``image/jpeg`` (base64 checked: the template pastes it into an attribute); every
  other mime type (``text/html``, ``application/javascript``, ``image/svg+xml``, ``text/markdown``,
  ``text/latex``, widget views, anything unknown) is dropped and named in a ``text/plain`` note;
  output metadata (width, height, ... pasted into attributes) is dropped; markdown and raw cells go
  through nbconvert's bleach sanitiser (tags escaped), their attachments and ``javascript:`` URLs
  removed; the notebook's widget state (rendered by a widget manager script) is removed.
* **CSV fields** (:func:`csv_field`): a text field that starts with ``=``, ``+``, ``-``, ``@``, a tab or
  a carriage return is prefixed with ``'`` so that no spreadsheet evaluates it; numbers stay numbers.
* **nbgrader markers** (:func:`inert_markers`): ``BEGIN/END SOLUTION``, ``BEGIN/END HIDDEN TESTS``,
  ``BEGIN/END MARK SCHEME`` written by a student in a cell that is not a grade cell lose their meaning
  (nbgrader matches the bare words anywhere in a line; the line is kept, with ``BEGIN`` → ``BEGlN``
  style de-activation made visible as ``[student] ...``).
"""

from __future__ import annotations

import base64
import binascii
import re

from nbformat import NotebookNode

SAFE_TEXT = "text/plain"
SAFE_IMAGES = ("image/png", "image/jpeg")
DANGEROUS_CSV_START = ("=", "+", "-", "@", "\t", "\r")

_MARKERS = re.compile(r"(BEGIN|END)(\s+)(SOLUTION|HIDDEN TESTS|MARK SCHEME)", re.I)
_SCRIPT_URL = re.compile(r"(?i)\b(java|vb|live)\s*script\s*:|\bdata\s*:\s*text/html")


def _valid_base64(value) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9+/=\s]*", value):
        return False
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def scrub_output(out: NotebookNode) -> NotebookNode:
    """One output with only inert content (see the module docstring). Returns the same node."""
    kind = out.get("output_type")
    if kind == "stream":
        if not isinstance(out.get("text"), str):
            out["text"] = "".join(str(t) for t in out.get("text") or [])
        return out
    if kind == "error":
        out["ename"] = str(out.get("ename", "Error"))
        out["evalue"] = str(out.get("evalue", ""))
        out["traceback"] = [str(t) for t in (out.get("traceback") or [])]
        return out
    if kind not in ("display_data", "execute_result"):  # unknown output type: its text, if any
        return NotebookNode(output_type="stream", name="stdout",
                            text=f"[an output of type {str(kind)[:40]!r} was removed by the grader]\n")
    data = out.get("data") or {}
    kept, dropped = {}, []
    for mime, value in data.items():
        if mime == SAFE_TEXT:
            kept[mime] = value if isinstance(value, str) else "".join(str(v) for v in value)
        elif mime in SAFE_IMAGES and _valid_base64(value):
            kept[mime] = value
        else:
            dropped.append(str(mime)[:60])
    if dropped:
        note = f"[{', '.join(sorted(dropped))} output removed by the grader: feedback shows text and images only]"
        kept[SAFE_TEXT] = (kept.get(SAFE_TEXT, "") + ("\n" if kept.get(SAFE_TEXT) else "") + note)
    out["data"] = NotebookNode(kept)
    out["metadata"] = NotebookNode()
    return out


def _sanitise_markup(text: str) -> str:
    from nbconvert.preprocessors.sanitize import SanitizeHTML

    clean = SanitizeHTML().sanitize_html_tags(text)
    return _SCRIPT_URL.sub("blocked:", clean)


def scrub_cell(cell: NotebookNode) -> NotebookNode:
    kind = cell.get("cell_type")
    meta = cell.get("metadata", {}).get("nbgrader")
    if isinstance(meta, dict) and "grade_id" in meta:  # pasted into id/href attributes by nbgrader's template
        meta["grade_id"] = re.sub(r"[^A-Za-z0-9_.-]", "_", str(meta["grade_id"]))[:100]
    if kind == "code":
        cell.outputs = [scrub_output(o) for o in cell.get("outputs", [])]
    elif kind in ("markdown", "raw"):
        cell.source = _sanitise_markup(cell.get("source", ""))
        cell.pop("attachments", None)
        if kind == "raw":
            cell.metadata.pop("format", None)
            cell.metadata.pop("raw_mimetype", None)
    return cell


def scrub_notebook(nb: NotebookNode) -> NotebookNode:
    """Every cell (see :func:`scrub_cell`) and the notebook's widget state."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        scrub_cell(cell)
    return nb


def inert_markers(source: str) -> str:
    """``### BEGIN HIDDEN TESTS`` → ``### [student] BEGIN_ HIDDEN TESTS``: visible, meaningless to nbgrader."""
    if not _MARKERS.search(source or ""):
        return source
    return _MARKERS.sub(lambda m: f"[student] {m.group(1)}_{m.group(2)}{m.group(3)}", source)


def csv_field(value):
    """A CSV cell no spreadsheet evaluates: text starting with = + - @ TAB CR gets a leading quote.
    Numbers (int/float, or text that is a plain number such as ``-1`` or ``2.5``) are kept."""
    if isinstance(value, (int, float)) or value is None:
        return value
    text = str(value)
    if text.startswith(DANGEROUS_CSV_START):
        if re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text):
            return text
        return "'" + text
    return text


def csv_row(row: dict) -> dict:
    return {k: csv_field(v) for k, v in row.items()}
