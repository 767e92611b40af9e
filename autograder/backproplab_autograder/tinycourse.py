"""A tiny course for the grader's own tests and timings: one assignment, three exercises, no torch.

``build(root)`` writes ``root/source/tiny/tiny.ipynb`` (an nbgrader source notebook with solution
regions and a hidden test) and returns helpers to write submissions: ``student(dest, student,
replace=...)`` writes ``dest/<student>/tiny/tiny.ipynb`` built from the solution with the given
solution cells' sources replaced (the "answers" as a student would type them).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

AID = "tiny"
NOTEBOOK = "tiny.ipynb"
POINTS = {"test_square": 2.0, "test_cube": 1.0, "test_halve": 1.0}
HIDDEN_LINE = 'assert square(-7) == 49, "hidden: negative inputs"'

SOLUTIONS = {
    "square": "def square(x):\n    \"\"\"x * x\"\"\"\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION\n",
    "cube": "def cube(x):\n    \"\"\"x ** 3\"\"\"\n    ### BEGIN SOLUTION\n    return x * x * x\n    ### END SOLUTION\n",
    "halve": "def halve(x):\n    \"\"\"x / 2\"\"\"\n    ### BEGIN SOLUTION\n    return x / 2\n    ### END SOLUTION\n",
}
TESTS = {
    "test_square": "# square returns x * x\nassert square(3) == 9, \"square(3) should be 9 (diagnosis: values)\"\n"
                   f"### BEGIN HIDDEN TESTS\n{HIDDEN_LINE}\n### END HIDDEN TESTS\n",
    "test_cube": "# cube returns x ** 3\nassert cube(2) == 8, \"cube(2) should be 8 (diagnosis: values)\"\n",
    "test_halve": "# halve returns x / 2\nassert halve(3) == 1.5, \"halve(3) should be 1.5 (diagnosis: values)\"\n",
}


def _meta(grade_id: str, *, solution=False, grade=False, points=0.0, locked=False) -> dict:
    meta = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook() -> nbformat.NotebookNode:
    cells = [new_markdown_cell("# Tiny\nThree small functions."),
             new_code_cell("import math\nimport os", metadata=_meta("setup", locked=True))]
    for name, test in (("square", "test_square"), ("cube", "test_cube"), ("halve", "test_halve")):
        cells.append(new_code_cell(SOLUTIONS[name], metadata=_meta(name, solution=True)))
        cells.append(new_code_cell(TESTS[test], metadata=_meta(test, grade=True, points=POINTS[test], locked=True)))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def build(root: Path) -> Path:
    """Write the source folder; returns it (pass it as ``--source``)."""
    src = Path(root) / "source" / AID
    src.mkdir(parents=True, exist_ok=True)
    nbformat.write(source_notebook(), str(src / NOTEBOOK))
    return src.parent


def answer(source: str) -> str:
    """The solution as a student would hand it in: markers removed."""
    return "\n".join(ln for ln in source.splitlines() if not re.match(r"\s*### (BEGIN|END) SOLUTION", ln)) + "\n"


def submission(replace: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The solution notebook, as submitted (no hidden tests), with some solution cells replaced."""
    replace = replace or {}
    nb = source_notebook()
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata["nbgrader"].get("solution") if "nbgrader" in cell.metadata else False:
            cell.source = replace.get(gid, answer(cell.source))
        elif gid in TESTS:
            cell.source = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n", "", cell.source, flags=re.S)
    return nb


def write_student(dest: Path, student: str, nb: nbformat.NotebookNode | str | bytes) -> Path:
    path = Path(dest) / student / AID / NOTEBOOK
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(nb, bytes):
        path.write_bytes(nb)
    elif isinstance(nb, str):
        path.write_text(nb)
    else:
        nbformat.write(nb, str(path))
    return path
