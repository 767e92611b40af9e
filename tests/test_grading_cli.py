"""Intake of every input layout, and the command's idempotence and resumability."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder import intake, tinycourse

NAMES = {"tiny": "tiny.ipynb"}


def _nb_bytes() -> bytes:
    return nbformat.writes(tinycourse.submission()).encode()


def test_nbgrader_layout_is_placed(tmp_path):
    for s in ("alice", "bob"):
        tinycourse.write_student(tmp_path / "in" / "submitted", s, tinycourse.submission())
    got = intake.normalise(tmp_path / "in", tmp_path / "dest", tmp_path / "work", NAMES)
    assert sorted(got.placed) == [("alice", "tiny"), ("bob", "tiny")]
    assert not got.problems
    src = tmp_path / "in" / "submitted" / "alice" / "tiny" / "tiny.ipynb"
    assert (tmp_path / "dest" / "alice" / "tiny" / "tiny.ipynb").read_bytes() == src.read_bytes()


def test_folder_of_student_zips_and_one_zip_are_placed(tmp_path):
    zips = tmp_path / "zips"
    zips.mkdir()
    with zipfile.ZipFile(zips / "carol.zip", "w") as zf:
        zf.writestr("tiny/tiny.ipynb", _nb_bytes())
        zf.writestr("tiny/.ipynb_checkpoints/tiny-checkpoint.ipynb", _nb_bytes())
    with zipfile.ZipFile(zips / "dave.zip", "w") as zf:
        zf.writestr("tiny.ipynb", _nb_bytes())          # notebook at the root of the zip
        zf.writestr("notes.txt", "hello")               # an extra file
    with zipfile.ZipFile(zips / "eve.zip", "w") as zf:
        zf.writestr("tiny/tiny (1).ipynb", _nb_bytes())  # renamed by a browser download
        zf.writestr("../evil.ipynb", _nb_bytes())       # zip slip
    got = intake.normalise(zips, tmp_path / "dest", tmp_path / "work", NAMES)
    assert sorted(got.placed) == [("carol", "tiny"), ("dave", "tiny"), ("eve", "tiny")]
    text = "\n".join(got.problems)
    assert "notes.txt" in text and "unsafe path" in text
    assert any("tiny (1).ipynb" in n for n in got.notes)
    assert not (tmp_path / "evil.ipynb").exists()
    one = tmp_path / "class.zip"
    with zipfile.ZipFile(one, "w") as zf:
        for z in sorted(zips.glob("*.zip")):
            zf.write(z, f"class/{z.name}")
    again = intake.normalise(one, tmp_path / "dest2", tmp_path / "work2", NAMES)
    assert sorted(again.placed) == sorted(got.placed)


def test_unplaceable_files_are_reported(tmp_path):
    root = tmp_path / "in"
    tinycourse.write_student(root, "frank", tinycourse.submission())
    (root / "frank" / "lab9").mkdir()
    (root / "frank" / "lab9" / "x.ipynb").write_text("{}")
    (root / "stray.ipynb").write_text("{}")
    (root / "bad id!").mkdir()
    (root / "gina" / "tiny").mkdir(parents=True)
    (root / "gina" / "tiny" / "a.ipynb").write_bytes(_nb_bytes())
    (root / "gina" / "tiny" / "b.ipynb").write_bytes(_nb_bytes())
    got = intake.normalise(root, tmp_path / "dest", tmp_path / "work", NAMES)
    assert sorted(got.placed) == [("frank", "tiny")]
    text = "\n".join(got.problems)
    for needle in ("lab9", "stray.ipynb", "bad id!", "a.ipynb", "b.ipynb"):
        assert needle in text, needle
    assert "Not placed" in got.report_markdown()


def _cli(args, **kw):
    exe = Path(sys.executable).parent / "backproplab-grade"
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)


@pytest.mark.slow
def test_killed_run_resumes_and_a_rerun_changes_nothing(tmp_path):
    source = tinycourse.build(tmp_path)
    subs = tmp_path / "subs"
    tinycourse.write_student(subs, "s1", tinycourse.submission())
    tinycourse.write_student(subs, "s2", tinycourse.submission({"cube": "def cube(x):\n    return x * x\n"}))
    tinycourse.write_student(subs, "s3", tinycourse.submission({"halve": "def halve(x):\n    return x // 2\n"}))
    out = tmp_path / "out"
    args = [str(subs), "--out", str(out), "--source", str(source), "--jobs", "1", "--cell-timeout", "10",
            "--no-progress"]
    proc = _cli(args)
    deadline = time.time() + 300
    while time.time() < deadline and not list((out / "results").glob("*/*.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)        # kill the grader and its workers mid-run
    proc.wait()
    finished_before = len(list((out / "results").glob("*/*.json")))
    assert 1 <= finished_before < 3

    second = _cli(args)
    text, _ = second.communicate(timeout=600)
    assert second.returncode == 0, text
    assert f"({finished_before} already done)" in text
    with open(out / "grades.csv") as fh:
        scores = {r["student_id"]: (r["score"], r["max_score"]) for r in csv.DictReader(fh)}
    assert scores == {"s1": ("4", "4"), "s2": ("3", "4"), "s3": ("3", "4")}
    first_csvs = [(out / n).read_bytes() for n in ("grades.csv", "grades_detailed.csv")]

    third = _cli(args)
    text, _ = third.communicate(timeout=600)
    assert third.returncode == 0 and "(3 already done)" in text, text
    assert [(out / n).read_bytes() for n in ("grades.csv", "grades_detailed.csv")] == first_csvs
    assert not list(out.rglob(".*.tmp"))


@pytest.mark.slow
def test_scores_land_before_the_feedback_pages_and_a_stopped_feedback_phase_resumes(tmp_path):
    """The jobs score only; the class CSVs are written; then the feedback phase makes every page. A run
    stopped after its scores landed keeps them: the next run only makes the missing page."""
    import json

    from backproplab_autograder import grading
    from backproplab_autograder.cli import grade_class
    from backproplab_autograder.limits import Limits

    source = tinycourse.build(tmp_path)
    subs = tmp_path / "subs"
    tinycourse.write_student(subs, "s1", tinycourse.submission())
    tinycourse.write_student(subs, "s2", tinycourse.submission({"cube": "def cube(x):\n    return x * x\n"}))
    out = tmp_path / "out"
    seen = {}
    landed = grading.Grader.run

    def watching_run(self, jobs, course, on_done=None, on_scores=None):
        def on_scores_seen(done):
            on_scores(done)
            seen["csv"] = (out / "grades.csv").exists()
            seen["pages"] = sorted(p.name for p in (out / "feedback").rglob("*.html"))
            seen["pending"] = sorted(r["student_id"] for r in done if r.get("feedback") == "pending")
        return landed(self, jobs, course, on_done, on_scores_seen)

    settings = grading.Settings(out=out, source_dir=source, jobs=2, progress=False, limits=Limits(cell_timeout=10))
    grading.Grader.run = watching_run
    try:
        summary = grade_class(subs, settings, ["tiny"], echo=lambda *a: None)
    finally:
        grading.Grader.run = landed
    assert seen == {"csv": True, "pages": [], "pending": ["s1", "s2"]}
    pages = {s: out / "feedback" / s / "tiny" / "tiny.html" for s in ("s1", "s2")}
    assert all(p.exists() for p in pages.values())
    results = {s: json.loads((out / "results" / s / "tiny.json").read_text()) for s in ("s1", "s2")}
    assert all("feedback" not in r and "feedback_hash" not in r for r in results.values())
    assert summary["grader_errors"] == 0

    # stop after the scores: s2's page is not made yet (as a run killed in its feedback phase leaves it)
    r2 = results["s2"]
    final_hash = r2["hash"]
    r2.update(feedback="pending", feedback_hash=final_hash, hash="scores-only")
    (out / "results" / "s2" / "tiny.json").write_text(json.dumps(r2))
    pages["s2"].unlink()
    settings = grading.Settings(out=out, source_dir=source, jobs=1, progress=False, limits=Limits(cell_timeout=10))
    summary = grade_class(subs, settings, ["tiny"], echo=lambda *a: None)
    assert summary["skipped"] == 2 and summary["grader_errors"] == 0
    assert pages["s2"].exists()
    again = json.loads((out / "results" / "s2" / "tiny.json").read_text())
    assert again["hash"] == final_hash and "feedback" not in again
    assert (again["score"], again["cells"]) == (r2["score"], r2["cells"])


def test_a_feedback_page_that_cannot_be_made_is_a_note_and_the_scores_stand(tmp_path, monkeypatch):
    from backproplab_autograder import forkserver, grading

    course = grading.Course(root=tmp_path / "course", db_url="", assignments=["tiny"], token="t", source_hash={},
                            release={}, jupyter_path=tmp_path / "jupyter", notebooks={"tiny": "tiny.ipynb"},
                            protected={})
    (tmp_path / "course").mkdir()
    settings = grading.Settings(out=tmp_path / "out", jobs=1, progress=False)
    cells = [{"grade_id": "test_square", "score": 2.0, "max_score": 2.0, "reason": "passed"}]
    res = {"student_id": "s1", "assignment": "tiny", "notes": [], "score": 2.0, "cells": list(cells),
           "feedback": "pending", "feedback_hash": "final", "hash": "scores-only"}

    def failing(slot, args, cwd, env, timeout, fallback):
        return subprocess.CompletedProcess(args, 0, stdout=grading.FEEDBACK_LINE
                                           + '{"assignment": "tiny", "student": "s1", "ok": false, '
                                           '"error": "ValueError: broken"}\n',
                                           stderr="")

    monkeypatch.setattr(forkserver, "run_job", failing)
    assert grading.render_feedback(course, settings, [res]) == 0
    assert res["score"] == 2.0 and res["cells"] == cells and res["feedback"] == "pending"
    assert "no feedback page" in res["notes"][-1] and "ValueError: broken" in res["notes"][-1]
    assert (settings.out / "results" / "s1" / "tiny.json").exists()


def test_setup_releases_every_assignment_in_one_pass_and_names_the_one_that_failed(tmp_path):
    """The set-up generates all handed-in assignments in one nbgrader process: a broken source is named
    (with nbgrader's reason), the good ones are released and recorded, and a rerun after the fix redoes
    only the one that failed."""
    from backproplab_autograder import cli, grading

    source = tinycourse.build(tmp_path)
    broken = nbformat.read(str(source / "tiny" / "tiny.ipynb"), as_version=4)
    broken.cells[2].source = broken.cells[2].source.replace("### END SOLUTION", "")  # an unclosed region
    (source / "broke").mkdir()
    nbformat.write(broken, str(source / "broke" / "broke.ipynb"))
    settings = cli.settings_from_args(cli.build_parser().parse_args(
        [str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--source", str(source)]))
    with pytest.raises(RuntimeError) as failure:
        grading.setup_course(settings, ["broke", "tiny"])
    message = str(failure.value)
    assert "could not set up broke:" in message and "end solution" in message.lower(), message
    root = tmp_path / "out" / "course"
    assert (root / "release" / "tiny" / "tiny.ipynb").exists()
    assert (root / "source-hashes" / "tiny").exists() and not (root / "source-hashes" / "broke").exists()

    nbformat.write(nbformat.read(str(source / "tiny" / "tiny.ipynb"), as_version=4), str(source / "broke" / "broke.ipynb"))
    released = (root / "release" / "tiny" / "tiny.ipynb").stat().st_mtime_ns
    course = grading.setup_course(settings, ["broke", "tiny"])
    assert (root / "release" / "tiny" / "tiny.ipynb").stat().st_mtime_ns == released  # not regenerated
    assert set(course.release) == {"broke", "tiny"}
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        cells = {aid: len(gradebook.find_notebook(aid, aid).grade_cells)
                 for aid in ("broke", "tiny")}
    assert cells == {"broke": 3, "tiny": 3}


def test_every_student_is_in_the_gradebook_before_any_job_starts(tmp_path, monkeypatch):
    """Two jobs of one student start together on two slots; if each had to create the student's row
    (nbgrader's autograde --create), one would fail on the unique constraint. The rows exist first."""
    from backproplab_autograder import cli, grading
    from nbgrader.api import Gradebook, MissingEntry

    source = tinycourse.build(tmp_path)
    settings = cli.settings_from_args(cli.build_parser().parse_args(
        [str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--source", str(source), "--jobs", "2",
         "--no-feedback", "--no-progress"]))
    course = grading.setup_course(settings, ["tiny"])
    seen = []

    def fake_grade_one(job, course, settings, slot):
        with Gradebook(course.db_url, course.course_id) as gradebook:
            try:
                gradebook.find_student(job.student)
                seen.append((job.student, True))
            except MissingEntry:
                seen.append((job.student, False))
        return {"student_id": job.student, "assignment": job.assignment, "cells": [], "score": 0.0,
                "max_score": 0.0, "notes": [], "seconds": 0.0}

    monkeypatch.setattr(grading, "grade_one", fake_grade_one)
    jobs = [grading.Job(s, "tiny", tinycourse.write_student(tmp_path / "subs", s, tinycourse.submission()))
            for s in ("zoe", "yan", "zoe")]
    grading.Grader(settings).run(jobs, course)
    assert sorted(seen) == [("yan", True), ("zoe", True), ("zoe", True)]
