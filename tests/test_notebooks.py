"""Every lab's release is in sync with nbgrader and leaks nothing; notebooks carry no outputs.
(That the solution runs clean and the untouched release fails exactly its grade cells is checked on
nbgrader's own executed copies, in test_nbgrader_round.py.)"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder.course import ASSIGNMENTS, RELEASE, SOLUTIONS, available_assignments
from backproplab_autograder.release import comparable, generate

REPO = Path(__file__).resolve().parents[1]
LABS = available_assignments()

pytestmark = pytest.mark.slow


def _solution_path(aid: str) -> Path:
    return SOLUTIONS / aid / ASSIGNMENTS[aid]


def _release_path(aid: str) -> Path:
    return RELEASE / aid / ASSIGNMENTS[aid]


@pytest.mark.parametrize("aid", LABS)
def test_committed_release_matches_nbgrader_output(aid):
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate([aid], Path(tmp))[aid]
        assert _release_path(aid).exists(), f"notebooks/{aid} is missing: run `make release`"
        assert comparable(_release_path(aid)) == comparable(fresh), f"notebooks/{aid} is stale: run `make release`"


def _solution_lines(aid: str) -> list[str]:
    """Substantial lines written only between BEGIN/END SOLUTION or HIDDEN TESTS markers
    (a line that the source also shows outside those regions is public anyway)."""
    nb = nbformat.read(_solution_path(aid), as_version=4)
    secret, public = [], set()
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            s = line.strip()
            if re.match(r"#+ *BEGIN (SOLUTION|HIDDEN TESTS)", s):
                inside = True
                continue
            if re.match(r"#+ *END (SOLUTION|HIDDEN TESTS)", s):
                inside = False
                continue
            if inside and len(s) >= 28 and not s.startswith("#"):
                secret.append(s)
            elif not inside:
                public.add(s)
    return [s for s in secret if s not in public]


@pytest.mark.parametrize("aid", LABS)
def test_no_solution_text_in_release_or_library(aid):
    lines = _solution_lines(aid)
    assert lines, "found no solution region to look for"
    release_text = _release_path(aid).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in release_text, f"{marker} left in notebooks/{aid}"
    release_nb = nbformat.read(_release_path(aid), as_version=4)
    release_code = "\n".join(c.source for c in release_nb.cells)
    library = "\n".join(p.read_text() for p in (REPO / "lib").rglob("*.py"))
    leaked = [s for s in lines if s in release_code or s in library]
    assert not leaked, "solution lines found in the release or lib/:\n" + "\n".join(leaked[:10])


@pytest.mark.parametrize("path", sorted(SOLUTIONS.glob("*/*.ipynb")) + sorted(RELEASE.glob("*/*.ipynb")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts (strip them)"
