"""A real nbgrader round per lab: the reference solution and the untouched release, handed in by two
students, autograded by nbgrader; full marks for one, zero for the other, and feedback for both.

The autograded copies are the executed notebooks, so the same round also proves that the solution
notebook runs top to bottom with no cell raising, and that the untouched release raises in its grade
cells and nowhere else (every lesson cell that uses an exercise is guarded by ``needs``)."""

from __future__ import annotations

import shutil
import time

import nbformat
import pytest
from backproplab_autograder.config import render_config
from backproplab_autograder.course import ASSIGNMENTS, RELEASE, SOLUTIONS, available_assignments, nbgrader
from nbgrader.utils import is_grade

pytestmark = pytest.mark.slow



def _errors(path):
    """(grade_id or cell index, is_grade, first line of the error) for every code cell that raised."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                found.append((meta.get("grade_id") or f"cell {i}", bool(meta.get("grade")),
                              f"{out.get('ename')}: {str(out.get('evalue', '')).splitlines()[:1]}"))
    # code grade cells only: written answers (markdown) are a person's to grade and never raise
    grade_ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                 if c.cell_type == "code" and is_grade(c)]
    return found, grade_ids


@pytest.mark.parametrize("aid", available_assignments())
def test_reference_gets_full_marks_blank_gets_zero_and_both_get_feedback(tmp_path, aid):
    from nbgrader.api import Gradebook

    nb_name = ASSIGNMENTS[aid]
    (tmp_path / "nbgrader_config.py").write_text(render_config(tmp_path, students=["reference", "blank"], timeout=300))
    shutil.copytree(SOLUTIONS / aid, tmp_path / "source" / aid)
    nbgrader("generate_assignment", aid, "--force", cwd=tmp_path)
    for student, src in [("reference", SOLUTIONS / aid / nb_name), ("blank", RELEASE / aid / nb_name)]:
        dest = tmp_path / "submitted" / student / aid
        dest.mkdir(parents=True)
        shutil.copy(src, dest / nb_name)
        (dest / "timestamp.txt").write_text("2026-11-22 10:00:00.000000 UTC")
    start = time.perf_counter()
    nbgrader("autograde", aid, "--force", cwd=tmp_path)
    print(f"{aid}: two notebooks autograded in {time.perf_counter() - start:.1f} s")
    nbgrader("generate_feedback", aid, "--force", cwd=tmp_path)

    # the solution notebook ran clean, cell by cell
    errors, grade_ids = _errors(tmp_path / "autograded" / "reference" / aid / nb_name)
    assert grade_ids, "the notebook has no grade cells"
    assert not errors, "cells raised in the solution notebook:\n" + "\n".join(map(str, errors))
    # the untouched release raised in every grade cell and nowhere else
    errors, grade_ids = _errors(tmp_path / "autograded" / "blank" / aid / nb_name)
    others = [e for e in errors if not e[1]]
    assert not others, "cells other than grade cells raised on the untouched release:\n" + "\n".join(map(str, others))
    passing = sorted(set(grade_ids) - {e[0] for e in errors})
    assert not passing, f"grade cells that pass on the untouched stubs (they test nothing): {passing}"

    with Gradebook(f"sqlite:///{tmp_path}/gradebook.db") as gb:
        ref = gb.find_submission(aid, "reference")
        blank = gb.find_submission(aid, "blank")
        assert ref.max_score > 0
        grades = gb.find_submission_notebook(nb_name[:-6], aid, "reference").grades
        auto = [g for g in grades if g.cell.cell_type == "code"]
        written = [g for g in grades if g.cell.cell_type == "markdown"]
        failed = [g.name for g in auto if g.score != g.max_score]
        assert not failed, f"reference solution lost points on {failed}"
        # written answers wait for a person (the reference's model answers are not auto-graded)
        assert all(g.needs_manual_grade for g in written), [g.name for g in written if not g.needs_manual_grade]
        auto_max = sum(g.max_score for g in auto)
        assert blank.score == 0, f"the untouched release scored {blank.score}"

    for student, score in (("reference", auto_max), ("blank", 0)):
        html = (tmp_path / "feedback" / student / aid / nb_name.replace(".ipynb", ".html")).read_text()
        assert f"Score: {float(score):.1f} / {float(ref.max_score):.1f}" in html
    # Hidden-test source in feedback (tracebacks included) is the class grader's concern:
    # see tests/test_grading_*.py.
