"""The manifest lists every lab; each source notebook is in sync with its text source and each release
with nbgrader; nothing leaks; notebooks carry no outputs.
(That the solution runs clean and the untouched release fails exactly its grade cells is checked on
nbgrader's own executed copies, in test_nbgrader_round.py.)"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder import course, sources
from backproplab_autograder.course import ASSIGNMENTS, RELEASE, SOLUTIONS, available_assignments
from backproplab_autograder.release import comparable, generate
from nbgrader.utils import is_grade, is_task

from tests.helpers.leaks import solution_lines

REPO = Path(__file__).resolve().parents[1]
LABS = available_assignments()



def test_every_lab_folder_is_in_the_manifest_and_every_manifest_lab_has_a_source():
    assert course.check_manifest() == []


@pytest.mark.parametrize("aid", LABS)
def test_source_notebook_is_in_sync_with_its_text_source(aid):
    assert not sources.stale(course.lab(aid)), (
        f"solutions/{aid}/{ASSIGNMENTS[aid]} differs from what its .py source generates: run `make release`")


@pytest.mark.parametrize("aid", LABS)
def test_manifest_points_equal_the_notebook_points(aid):
    nb = nbformat.read(_solution_path(aid), as_version=4)
    total = sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells
                if is_grade(c) or is_task(c))
    assert total == course.lab(aid).points, f"{aid}: the grade cells carry {total} points, course.toml says " \
        f"{course.lab(aid).points}"


def test_manifest_errors_name_the_entry():
    with pytest.raises(course.ManifestError, match="lacks points"):
        course.parse_manifest('[[lab]]\nid = "x"\nnotebook = "x.ipynb"\ntitle = "X"\n')
    with pytest.raises(course.ManifestError, match="listed twice"):
        course.parse_manifest('[[lab]]\nid = "x"\nnotebook = "x.ipynb"\ntitle = "X"\npoints = 1\n' * 2)
    with pytest.raises(course.ManifestError, match="unknown kind"):
        course.parse_manifest('[[lab]]\nid = "x"\nnotebook = "x.ipynb"\ntitle = "X"\npoints = 1\n'
                              '[lab.rules]\nf = ["magic"]\n')


def test_a_lab_folder_missing_from_the_manifest_is_an_error(tmp_path):
    for aid in LABS:
        (tmp_path / aid).mkdir()
        (tmp_path / aid / course.lab(aid).source.name).write_text("# %%\n")
    (tmp_path / "lab9_forgotten").mkdir()
    problems = course.check_manifest(tmp_path)
    assert len(problems) == 1 and "lab9_forgotten" in problems[0] and "course.toml" in problems[0]


slow = pytest.mark.slow


def _solution_path(aid: str) -> Path:
    return SOLUTIONS / aid / ASSIGNMENTS[aid]


def _release_path(aid: str) -> Path:
    return RELEASE / aid / ASSIGNMENTS[aid]


@slow
@pytest.mark.parametrize("aid", LABS)
def test_committed_release_matches_nbgrader_output(aid):
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate([aid], Path(tmp))[aid]
        assert _release_path(aid).exists(), f"notebooks/{aid} is missing: run `make release`"
        assert comparable(_release_path(aid)) == comparable(fresh), f"notebooks/{aid} is stale: run `make release`"


@slow
@pytest.mark.parametrize("aid", LABS)
def test_no_solution_text_in_release_or_library(aid):
    lines = solution_lines(_solution_path(aid))
    assert lines, "found no solution region to look for"
    release_text = _release_path(aid).read_text()
    assert sorted(p.name for p in (RELEASE / aid).iterdir()) == [ASSIGNMENTS[aid]], \
        f"notebooks/{aid} must hold only the release notebook (the .py source holds the answers)"
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


@pytest.mark.parametrize("aid", LABS)
def test_gradecell_table_lists_every_grade_cell(aid):
    """tests/gradecell_table.md (regenerate it as its header says) has a row for every grade cell."""
    from tests.helpers.gradecells import grade_ids

    table = (REPO / "tests" / "gradecell_table.md").read_text()
    section = table.split(f"## {aid}\n", 1)[1].split("\n## ", 1)[0] if f"## {aid}\n" in table else ""
    missing = [g for g in grade_ids(aid) if f"| `{g}` |" not in section]
    assert not missing, f"tests/gradecell_table.md lacks {missing}: regenerate it (tests/helpers/gradecell_table.py)"
