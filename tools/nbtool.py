"""Convert between solution notebooks and a plain-text "percent" form that is easy to write and review.

The notebook in ``solutions/`` is the source of truth; this tool only makes it pleasant to edit::

    python tools/nbtool.py to-text solutions/lab1_perceptron/perceptron.ipynb > /tmp/lab1.py
    # edit /tmp/lab1.py
    python tools/nbtool.py from-text /tmp/lab1.py solutions/lab1_perceptron/perceptron.ipynb
    python tools/nbtool.py strip notebooks/**/*.ipynb      # drop outputs and execution counts

Cell markers (one per line, everything until the next marker is the cell's source)::

    # %% [markdown]
    # %% [code]
    # %% [solution] id=threshold_unit                 an nbgrader "autograded answer" cell
    # %% [test] id=test_threshold_unit points=2       an nbgrader "autograder tests" cell (locked)
    # %% [locked] id=setup                            a read-only cell nbgrader restores when grading

The round trip notebook -> text -> notebook is exact, so a reviewer can always diff the text form.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

MARKER = re.compile(r"^# %% \[(markdown|code|solution|test|locked)\](.*)$")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _parse_attrs(text: str) -> dict[str, str]:
    attrs = {}
    for token in text.split():
        key, _, value = token.partition("=")
        attrs[key] = value
    return attrs


def _nbgrader_meta(kind: str, attrs: dict[str, str]) -> dict | None:
    if kind in ("markdown", "code"):
        return None
    grade_id = attrs.get("id")
    if not grade_id:
        raise ValueError(f"a [{kind}] cell needs id=...")
    meta = {
        "grade": kind == "test",
        "grade_id": grade_id,
        "locked": kind in ("test", "locked"),
        "schema_version": 3,
        "solution": kind == "solution",
        "task": False,
    }
    if kind == "test":
        meta["points"] = int(attrs.get("points", "1"))
    return meta


def _uncomment_markdown(source: str) -> str:
    """Accept jupytext-style markdown, where every line is a comment (``# text``, ``#``)."""
    lines = source.splitlines()
    if lines and all(line.startswith("#") for line in lines if line.strip()) and any(
            line.startswith("# ") or line == "#" for line in lines):
        if all(line == "#" or line.startswith("# ") or not line.strip() for line in lines):
            return "\n".join(line[2:] if line.startswith("# ") else "" if line == "#" else line for line in lines)
    return source


def text_to_notebook(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    current: tuple[str, dict] | None = None
    lines: list[str] = []

    def flush():
        if current is None:
            return
        kind, attrs = current
        source = "\n".join(lines).strip("\n")
        index = len(nb.cells)
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(_uncomment_markdown(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
        meta = _nbgrader_meta(kind, attrs)
        if meta is not None:
            cell.metadata["nbgrader"] = meta
            if kind == "solution":
                cell.metadata["deletable"] = False
            if kind in ("test", "locked"):
                cell.metadata["deletable"] = False
                cell.metadata["editable"] = False
        cell.id = attrs.get("id", f"cell-{index:03d}")
        nb.cells.append(cell)

    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            flush()
            current = (m.group(1), _parse_attrs(m.group(2)))
            lines = []
        else:
            if current is None:
                if line.strip():
                    raise ValueError("text before the first '# %% [...]' marker")
                continue
            lines.append(line)
    flush()
    nbformat.validate(nb)
    return nb


def notebook_to_text(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown":
            header = "# %% [markdown]"
        elif meta.get("grade"):
            header = f"# %% [test] id={meta['grade_id']} points={meta.get('points', 0)}"
        elif meta.get("solution"):
            header = f"# %% [solution] id={meta['grade_id']}"
        elif meta.get("locked"):
            header = f"# %% [locked] id={meta['grade_id']}"
        else:
            header = "# %% [code]"
        out.append(header)
        out.append(cell.source)
        out.append("")
    return "\n".join(out)


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "to-text":
        nb = nbformat.read(argv[1], as_version=4)
        sys.stdout.write(notebook_to_text(nb))
        return 0
    if len(argv) == 3 and argv[0] == "from-text":
        nb = text_to_notebook(Path(argv[1]).read_text(encoding="utf-8"))
        write_notebook(nb, Path(argv[2]))
        return 0
    if len(argv) >= 2 and argv[0] == "strip":
        for name in argv[1:]:
            path = Path(name)
            write_notebook(strip_outputs(nbformat.read(path, as_version=4)), path)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
