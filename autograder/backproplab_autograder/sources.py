"""Lab sources are text: ``solutions/<lab>/<notebook>.py`` in jupytext's percent format is what an
author writes and a reviewer reads; ``solutions/<lab>/<notebook>.ipynb`` (what nbgrader needs) is
generated from it and committed beside it.

    python -m backproplab_autograder.sources            # regenerate every lab's .ipynb from its .py
    python -m backproplab_autograder.sources --check    # exit 1 if any .ipynb is out of sync
    python -m backproplab_autograder.sources --from-ipynb LAB   # one-off: write the .py from a notebook

The generated notebook is deterministic: a cell's id is its nbgrader grade id, else ``cell-<index>``, and the notebook
metadata holds only the kernel, so regenerating an unchanged source changes no byte.
"""

from __future__ import annotations

import argparse
import sys

import jupytext
import nbformat

from . import course

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def notebook_from_text(text: str) -> nbformat.NotebookNode:
    """The notebook of a percent-format source, with deterministic ids and no outputs."""
    nb = jupytext.reads(text, fmt="py:percent")
    nb.metadata = nbformat.NotebookNode(kernelspec=dict(KERNELSPEC), language_info={"name": "python"})
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, cell in enumerate(nb.cells):
        # nbgrader cells are named by their grade id (readable in diffs and nbgrader's logs)
        cell["id"] = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def text_from_notebook(nb: nbformat.NotebookNode) -> str:
    """The percent-format source of a notebook (outputs dropped)."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("language_info", None)
    return jupytext.writes(nb, fmt="py:percent")


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def build(lab: course.Lab) -> bool:
    """Write ``lab``'s notebook from its text source; True if the file changed."""
    if not lab.source.is_file():
        raise FileNotFoundError(f"{lab.source} does not exist (the text source of {lab.id})")
    new = render(notebook_from_text(lab.source.read_text()))
    old = lab.solution.read_text() if lab.solution.exists() else None
    if new != old:
        lab.solution.write_text(new)
        return True
    return False


def stale(lab: course.Lab) -> bool:
    """True if the committed notebook differs from what its text source generates."""
    if not lab.solution.exists():
        return True
    return render(notebook_from_text(lab.source.read_text())) != lab.solution.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labs", nargs="*", help="assignment ids (default: every lab of course.toml)")
    parser.add_argument("--check", action="store_true", help="only report notebooks out of sync")
    parser.add_argument("--from-ipynb", action="store_true", help="write the .py sources from the notebooks")
    args = parser.parse_args(argv)
    chosen = [course.lab(a) for a in args.labs] if args.labs else list(course.labs())
    if args.from_ipynb:
        for lab in chosen:
            lab.source.write_text(text_from_notebook(nbformat.read(lab.solution, as_version=4)))
            print(f"wrote {lab.source.relative_to(course.REPO)}")
        return 0
    if args.check:
        out = [lab for lab in chosen if stale(lab)]
        for lab in out:
            print(f"{lab.solution.relative_to(course.REPO)} is out of sync with "
                  f"{lab.source.name}: run `make release`", file=sys.stderr)
        return 1 if out else 0
    for lab in chosen:
        if build(lab):
            print(f"generated {lab.solution.relative_to(course.REPO)} from {lab.source.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
