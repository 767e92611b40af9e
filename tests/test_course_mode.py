"""A term in an nbgrader course, end to end: release through nbgrader's exchange, two students fetch and
submit (one late), one never submits, collect, `backproplab-grade --course`, a TA scores a written
answer, feedback released and fetched, Canvas and Moodle exports checked cell by cell against the
gradebook, a one-student regrade, the formgrader's autograde path, and bad input."""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder import cli, lms, tinycourse
from backproplab_autograder.course import lab, nbgrader
from nbgrader.api import Gradebook
from nbgrader.utils import is_grade, is_solution

pytestmark = pytest.mark.slow

AID = "lab1_perceptron"
COURSE_ID = "bpl-term"
LAB = lab(AID)


def _config(root: Path, exchange: Path, extra: str = "") -> str:
    return (f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(exchange)!r}\n"
            f"{extra}")


def _nbgrader(cwd: Path, *args: str, check: bool = True):
    return nbgrader(*args, cwd=cwd, check=check, timeout=600)


def _answered(release: Path, write_answers: bool) -> nbformat.NotebookNode:
    solution = nbformat.read(LAB.solution, as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: tinycourse.answer(c.source) for c in solution.cells
               if c.cell_type == "code" and is_solution(c)}
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            cell.source = answers[meta["grade_id"]]
        elif meta.get("solution") and write_answers:
            cell.source = "My own explanation, in words."
    return nb


def _grades(path: Path) -> dict[tuple[str, str], dict]:
    with open(path) as fh:
        return {(r["student_id"], r["assignment"]): r for r in csv.DictReader(fh)}


def _gradebook_scores(db_url: str) -> dict[str, tuple[float, float]]:
    """student -> (raw score, late penalty) from nbgrader's own API."""
    out = {}
    with Gradebook(db_url, COURSE_ID) as gb:
        for sub in gb.assignment_submissions(AID):
            out[sub.student.id] = (float(sub.score), float(sum(n.late_submission_penalty or 0 for n in sub.notebooks)))
    return out


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    base = tmp_path_factory.mktemp("term")
    course, exchange = base / "course", base / "exchange"
    course.mkdir()
    exchange.mkdir()
    os.chmod(exchange, 0o777)
    (course / "nbgrader_config.py").write_text(_config(course, exchange, 'c.LateSubmissionPlugin.penalty_method = "zero"\n'))
    assert cli.main(["setup-course", str(course), AID]) == 0
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S UTC")
    _nbgrader(course, "db", "assignment", "add", AID, f"--duedate={due}")
    for student in ("ana", "ben", "cho"):
        _nbgrader(course, "db", "student", "add", student)
    _nbgrader(course, "generate_assignment", AID, "--force")
    _nbgrader(course, "release_assignment", AID, "--force")
    for student, answers in (("ana", True), ("ben", False)):
        home = base / "home" / student
        home.mkdir(parents=True)
        (home / "nbgrader_config.py").write_text(_config(home, exchange))
        _nbgrader(home, "fetch_assignment", AID, "--course", COURSE_ID)
        fetched = home / AID / LAB.notebook
        nbformat.write(_answered(fetched, answers), str(fetched))
        _nbgrader(home, "submit", AID, "--course", COURSE_ID, "--student", student)
    _nbgrader(course, "collect", AID, "--update")
    # ben handed in after the due date
    late = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    (course / "submitted" / "ben" / AID / "timestamp.txt").write_text(late)
    assert cli.main(["--course", str(course), "--jobs", "2", "--no-progress", "--quiet"]) == 0
    return {"base": base, "course": course, "exchange": exchange, "db": f"sqlite:///{course / 'gradebook.db'}",
            "out": course / "backproplab"}


def test_scores_and_late_penalties_land_in_the_course_gradebook(term):
    scores = _gradebook_scores(term["db"])
    assert set(scores) == {"ana", "ben"}                       # cho never submitted
    auto_points = LAB.points - sum(c.metadata["nbgrader"]["points"] for c in nbformat.read(LAB.solution, 4).cells
                                   if c.cell_type == "markdown" and is_grade(c))
    assert scores["ana"] == (auto_points, 0.0)
    assert scores["ben"][0] == auto_points and scores["ben"][1] == auto_points   # plugin "zero": all of it
    autograded = term["course"] / "autograded" / "ana" / AID / LAB.notebook
    assert autograded.exists()
    # the student's own submission is untouched; nothing of the .py source is in the course's release
    assert not list((term["course"] / "release" / AID).glob("*.py"))
    grades = _grades(term["out"] / "grades.csv")
    assert float(grades[("ben", AID)]["score"]) == 0.0
    assert ("cho", AID) not in grades                          # not handed in: no row, never a 0
    assert (term["out"] / "jobs.csv").exists()                 # protections of every job, as in folder mode


def test_written_answers_wait_for_a_ta_and_the_ta_score_reaches_grades_csv(term):
    detailed = list(csv.DictReader(open(term["out"] / "grades_detailed.csv")))
    waiting = [r for r in detailed if r["student_id"] == "ana" and r["reason"] == "needs_manual_grade"]
    assert waiting and all(r["grade_id"].startswith("answer_") for r in waiting)
    with Gradebook(term["db"], COURSE_ID) as gb:
        grade = gb.find_grade(waiting[0]["grade_id"], LAB.notebook.removesuffix(".ipynb"), AID, "ana")
        grade.manual_score = float(waiting[0]["max_score"])
        gb.db.commit()
    assert cli.main(["--course", str(term["course"]), "--jobs", "1", "--no-progress", "--quiet"]) == 0
    grades = _grades(term["out"] / "grades.csv")
    raw, penalty = _gradebook_scores(term["db"])["ana"]
    assert float(grades[("ana", AID)]["score"]) == raw - penalty == _gradebook_scores(term["db"])["ana"][0]
    export = term["base"] / "nbgrader_export.csv"
    _nbgrader(term["course"], "export", "--to", str(export))
    for row in csv.DictReader(open(export)):
        if (row["student_id"], row["assignment"]) in grades:
            assert float(row["score"]) == float(grades[(row["student_id"], row["assignment"])]["score"])


def test_feedback_is_released_and_fetched_through_nbgrader(term):
    assert (term["course"] / "feedback" / "ana" / AID / LAB.notebook.replace(".ipynb", ".html")).exists()
    _nbgrader(term["course"], "release_feedback", AID)
    home = term["base"] / "home" / "ana"
    _nbgrader(home, "fetch_feedback", AID, "--course", COURSE_ID, "--student", "ana")
    pages = list((home / AID / "feedback").rglob("*.html"))
    assert pages, "fetch_feedback found no feedback page"
    assert "BEGIN HIDDEN TESTS" not in pages[0].read_text()


def test_lms_exports_match_the_gradebook_cell_by_cell(term):
    roster = term["base"] / "roster.csv"
    roster.write_text("student_id,name,lms_id,sis_user_id,sis_login_id,section,email\n"
                      "ana,Ana A,101,S101,ana@x,Sec 1,ana@uni\nben,Ben B,102,S102,ben@x,Sec 1,ben@uni\n"
                      "cho,Cho C,103,S103,cho@x,Sec 2,cho@uni\n")
    scores = _gradebook_scores(term["db"])
    for fmt in ("canvas", "moodle"):
        target = term["base"] / f"{fmt}.csv"
        assert lms.main(["--course", str(term["course"]), "--format", fmt, "--roster", str(roster),
                         "--to", str(target)]) == 0
        rows = list(csv.reader(open(target)))
        header = rows[0]
        col = header.index(AID)
        body = rows[2:] if fmt == "canvas" else rows[1:]
        if fmt == "canvas":
            assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
            assert rows[1][0].strip() == "Points Possible"
        else:
            assert header[:2] == ["ID number", "Email address"]
        by_id = {r[1] if fmt == "canvas" else r[0]: r for r in body}
        for student, lms_id in (("ana", "101"), ("ben", "102")):
            raw, penalty = scores[student]
            assert float(by_id[lms_id][col]) == max(0.0, raw - penalty)
        assert by_id["103"][col] == ""                        # cho: not handed in, empty


def test_one_student_regrade_keeps_everyone_elses_rows(term):
    before = _grades(term["out"] / "grades.csv")
    assert cli.main(["--course", str(term["course"]), "--student", "ana", "--force", "--jobs", "1",
                     "--no-progress", "--quiet"]) == 0
    after = _grades(term["out"] / "grades.csv")
    assert set(after) == set(before) and after[("ben", AID)] == before[("ben", AID)]


def test_the_formgrader_autograde_refuses_and_deletes_nothing(term):
    autograded = term["course"] / "autograded" / "ana" / AID / LAB.notebook
    assert autograded.exists()
    proc = _nbgrader(term["course"], "autograde", AID, "--student", "ana", "--force", check=False)
    assert proc.returncode != 0
    assert "backproplab-grade --course" in proc.stdout + proc.stderr
    assert autograded.exists()


def test_bad_course_input_gets_a_clear_message(term, tmp_path, capsys):
    empty = tmp_path / "nocourse"
    empty.mkdir()
    assert cli.main(["--course", str(empty), "--quiet"]) == 2
    assert "nbgrader_config.py" in capsys.readouterr().err
    (empty / "nbgrader_config.py").write_text("c = get_config()\n")
    assert cli.main(["--course", str(empty), "--quiet"]) == 2
    assert "no gradebook" in capsys.readouterr().err
    assert cli.main(["--course", str(term["course"]), "--assignment", "lab9_nowhere", "--quiet"]) == 2
    assert "not in the course's gradebook" in capsys.readouterr().err


def test_unreadable_timestamp_is_graded_flagged_and_not_penalised(term):
    course = term["course"]
    shutil.copytree(course / "submitted" / "ana", course / "submitted" / "dee")
    (course / "submitted" / "dee" / AID / "timestamp.txt").write_text("sometime last week")
    assert cli.main(["--course", str(course), "--student", "dee", "--jobs", "1", "--no-progress", "--quiet"]) == 0
    raw, penalty = _gradebook_scores(term["db"])["dee"]
    assert raw > 0 and penalty == 0.0
    import json

    result = json.loads((term["out"] / "results" / "dee" / f"{AID}.json").read_text())
    assert any("timestamp.txt could not be read" in n for n in result["notes"])


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("nbgrader's exchange is tested on Linux")
