"""The demo class (autograder/demo) grades to exactly the expected per-cell scores and diagnoses.

Every demo student hands in every lab; the whole class is graded in ONE `backproplab-grade` run
(module fixture, 2 workers), then each student is checked on its own. The consistency checks at the
bottom need no grading."""

from __future__ import annotations

import csv
import re

import nbformat
import pytest
from backproplab_autograder import demo
from backproplab_autograder.course import ASSIGNMENTS, SOLUTIONS, available_assignments
from backproplab_autograder.limits import Limits
from nbgrader.utils import is_grade, is_solution

LABS = available_assignments()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    limits = Limits(cell_timeout=60, notebook_timeout=300)
    summary, problems = demo.run(out, LABS, jobs=2, limits=limits, echo=lambda *a, **k: None)
    return out, summary, problems


def _people() -> list[str]:
    return list(demo.FIXED) + sorted(demo.students())


@pytest.mark.slow
def test_every_demo_student_hands_in_every_lab_and_nothing_fails_to_grade(graded):
    _, summary, _ = graded
    got = {(r["student_id"], r["assignment"]) for r in summary["results"]}
    assert got == {(s, aid) for s in _people() for aid in LABS}
    assert summary["grader_errors"] == 0
    assert summary["unplaced"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("student", _people())
def test_demo_student_gets_exactly_the_expected_scores(graded, student):
    _, _, problems = graded
    mine = [p for p in problems if p.split("/", 1)[0] == student]
    assert not mine, "\n".join(mine)


@pytest.mark.slow
def test_grades_detailed_records_the_diagnosis_of_each_expected_failure(graded):
    out, _, _ = graded
    with open(out / "grades_detailed.csv", newline="") as fh:
        rows = {(r["student_id"], r["assignment"], r["grade_id"]): r for r in csv.DictReader(fh)}
    for student, labs in demo.expected().items():
        for aid, cells in labs.items():
            for gid, want in cells.items():
                row = rows[(student, aid, gid)]
                assert float(row["score"]) == want["score"], (student, aid, gid, row)
                assert row["reason"] in ("wrong_answer", "partial"), (student, aid, gid, row)
                tags = re.findall(r"\(diagnosis: (\w+)\)", row["message"])
                assert tags and (want["diagnosis"] is None or want["diagnosis"] in tags), (student, aid, gid, row)


# --- consistency of autograder/demo, no grading --------------------------------------------------

def _grade_cells(aid: str) -> set[str]:
    nb = nbformat.read(str(SOLUTIONS / aid / ASSIGNMENTS[aid]), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells if is_grade(c)}


def test_every_expected_entry_belongs_to_a_demo_student_and_names_a_real_grade_cell():
    people = demo.students()
    for student, labs in demo.expected().items():
        assert student in people, student
        for aid, cells in labs.items():
            assert aid in people[student], f"{student}: expectation for {aid} but no answers for it"
            if aid in LABS:
                assert set(cells) <= _grade_cells(aid), (student, aid, set(cells) - _grade_cells(aid))


def test_every_demo_student_has_a_mistake_and_an_expectation_for_each_lab_it_changes():
    want = demo.expected()
    for student, data in demo.students().items():
        labs = [k for k in data if not k.startswith("_")]
        assert labs, student
        for aid in labs:
            assert data[aid], f"{student}/{aid}: no solution cell replaced"
            assert want.get(student, {}).get(aid), f"{student}/{aid}: a mistake but no failing cell expected"
            assert aid in data.get("_about", {}), f"{student}/{aid}: the mistake is not described"


def test_build_submissions_writes_the_whole_class_in_nbgrader_layout(tmp_path):
    count = demo.build_submissions(tmp_path / "submitted")
    written = sorted((tmp_path / "submitted").rglob("*.ipynb"))
    assert count == len(written) == len(_people()) * len(LABS)
    for path in written:
        student, aid, name = path.relative_to(tmp_path / "submitted").parts
        assert student in _people() and name == ASSIGNMENTS[aid]
    ref = nbformat.read(str(tmp_path / "submitted" / "reference" / LABS[0] / ASSIGNMENTS[LABS[0]]), as_version=4)
    assert not any("NotImplementedError" in c.source for c in ref.cells if is_solution(c))
