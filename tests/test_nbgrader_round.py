"""A real nbgrader round per lab: the reference solution and the untouched release, handed in by two
students, autograded by nbgrader; full marks for one, zero for the other, and feedback for both."""

from __future__ import annotations

import shutil

import pytest
from backproplab_autograder.course import ASSIGNMENTS, RELEASE, SOLUTIONS, available_assignments, nbgrader

pytestmark = pytest.mark.slow

CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.CourseDirectory.db_students = [dict(id="reference"), dict(id="blank")]
c.ExecutePreprocessor.timeout = 300
"""


@pytest.mark.parametrize("aid", available_assignments())
def test_reference_gets_full_marks_blank_gets_zero_and_both_get_feedback(tmp_path, aid):
    from nbgrader.api import Gradebook

    nb_name = ASSIGNMENTS[aid]
    (tmp_path / "nbgrader_config.py").write_text(CONFIG.format(root=str(tmp_path)))
    shutil.copytree(SOLUTIONS / aid, tmp_path / "source" / aid)
    nbgrader("generate_assignment", aid, "--force", cwd=tmp_path)
    for student, src in [("reference", SOLUTIONS / aid / nb_name), ("blank", RELEASE / aid / nb_name)]:
        dest = tmp_path / "submitted" / student / aid
        dest.mkdir(parents=True)
        shutil.copy(src, dest / nb_name)
        (dest / "timestamp.txt").write_text("2026-11-22 10:00:00.000000 UTC")
    nbgrader("autograde", aid, "--force", cwd=tmp_path)
    nbgrader("generate_feedback", aid, "--force", cwd=tmp_path)

    with Gradebook(f"sqlite:///{tmp_path}/gradebook.db") as gb:
        ref = gb.find_submission(aid, "reference")
        blank = gb.find_submission(aid, "blank")
        assert ref.max_score > 0
        failed = [g.name for g in gb.find_submission_notebook(nb_name[:-6], aid, "reference").grades
                  if g.score != g.max_score]
        assert ref.score == ref.max_score, f"reference solution lost points on {failed}"
        assert blank.score == 0, f"the untouched release scored {blank.score}"

    for student, score in (("reference", ref.max_score), ("blank", 0)):
        html = (tmp_path / "feedback" / student / aid / nb_name.replace(".ipynb", ".html")).read_text()
        assert f"Score: {float(score):.1f} / {float(ref.max_score):.1f}" in html
    # Hidden-test source in feedback (tracebacks included) is the class grader's concern:
    # see tests/test_grading_*.py.
