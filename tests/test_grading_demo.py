"""The demo class (autograder/demo) grades to exactly the expected per-cell scores.

Lab 1 only, to keep the suite short; `make grade-demo` grades every lab."""

from __future__ import annotations

import pytest
from backproplab_autograder import demo
from backproplab_autograder.course import available_assignments
from backproplab_autograder.limits import Limits

pytestmark = pytest.mark.slow
LAB = "lab1_perceptron"


@pytest.mark.skipif(LAB not in available_assignments(), reason="lab 1 has no source notebook yet")
def test_demo_students_get_exactly_the_expected_scores(tmp_path):
    limits = Limits(cell_timeout=60, notebook_timeout=300)
    summary, problems = demo.run(tmp_path / "out", [LAB], jobs=2, limits=limits, echo=lambda *a, **k: None)
    assert not problems, "\n".join(problems)
    graded = {(r["student_id"], r["assignment"]) for r in summary["results"]}
    expected_students = {"reference", "blank"} | {s for s, d in demo.students().items() if LAB in d}
    assert graded == {(s, LAB) for s in expected_students}
    assert summary["grader_errors"] == 0


def test_every_expected_entry_belongs_to_a_demo_student():
    people = demo.students()
    for student, labs in demo.expected().items():
        assert student in people, student
        for aid in labs:
            assert aid in people[student], f"{student}: expectation for {aid} but no answers for it"
