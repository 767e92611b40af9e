"""The class grader survives every fault the issue lists, records it as the reason, and keeps grading.

One class of the tiny course (``backproplab_autograder.tinycourse``: three exercises, no torch) is
graded once with two workers and short limits; each test then looks at one student. A student's
other exercises must still be graded, and every other student must be unaffected.
"""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder import sandbox, tinycourse
from backproplab_autograder.cli import grade_class
from backproplab_autograder.grading import Settings
from backproplab_autograder.limits import Limits

pytestmark = pytest.mark.slow

SQUARE, CUBE, HALVE = "test_square", "test_cube", "test_halve"
ALL = (SQUARE, CUBE, HALVE)


def _students() -> dict[str, object]:
    sub = tinycourse.submission
    deleted = sub()
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != CUBE]
    duplicated = sub()
    i = next(i for i, c in enumerate(duplicated.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == SQUARE)
    duplicated.cells.insert(i + 1, nbformat.from_dict(dict(duplicated.cells[i], id="copy-of-square-test")))
    markdown = sub()
    for c in markdown.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == HALVE:
            c.cell_type = "markdown"
            del c["outputs"], c["execution_count"]
    outside = sub({"square": "def square(x):\n    return _times(x, x)\n"})
    outside.cells.insert(2, nbformat.v4.new_code_cell("def _times(a, b):\n    return a * b\n"))
    kernel = sub()
    kernel.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "Gone", "language": "python"}
    return {
        "good": sub(),
        "wrong": sub({"square": "def square(x):\n    return x + x\n"}),
        "hidden_fail": sub({"square": "def square(x):\n    return abs(x) * x\n"}),
        "loop": sub({"square": "def square(x):\n    while True:\n        pass\n"}),
        "nosigint": sub({"square": "import signal\n\ndef square(x):\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                   "    while True:\n        pass\n"}),
        "osexit": sub({"cube": "import os\nos._exit(3)\n"}),
        "segfault": sub({"halve": "def halve(x):\n    import ctypes\n    return ctypes.string_at(0)\n"}),
        "memory": sub({"square": "def square(x):\n    hog = []\n    while True:\n        hog.append(bytearray(50_000_000))\n"}),
        "forkbomb": sub({"cube": "def cube(x):\n    import os\n    while True:\n        os.fork()\n"}),
        "print100mb": sub({"halve": "def halve(x):\n    print('x' * 100_000_000)\n    return x / 2\n"}),
        "badjson": b'{"cells": [{"cell_type": "code", "source": ',
        "empty": b"",
        "deleted": deleted,
        "duplicated": duplicated,
        "markdown": markdown,
        "kernel": kernel,
        "outside_helper": outside,
        "stderr": sub({"square": "import sys\nimport warnings\n\ndef square(x):\n    warnings.warn('a torch-like "
                                 "UserWarning')\n    print('a log line', file=sys.stderr)\n    return x * x\n"}),
        "fake_result": sub({"cube": "def cube(x):\n    from IPython.display import publish_display_data\n"
                                    "    from IPython import get_ipython\n"
                                    "    get_ipython().displayhook(1.0)\n    return x + 1\n"}),
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    source = tinycourse.build(root)
    subs = root / "submitted"
    for student, nb in _students().items():
        tinycourse.write_student(subs, student, nb)
    limits = Limits(cell_timeout=5, notebook_timeout=90, interrupt_grace=2, memory_mib=1024, processes=64,
                    output_bytes=64 * 1024)
    # scan=False: these students test the runtime line of defence (limits, restarts, the uid's clean-up);
    # several of them (ctypes, os.fork, signal) would otherwise be stopped by the static scan before
    # running (that is tested in tests/test_integrity.py).
    settings = Settings(out=root / "out", limits=limits, jobs=2, source_dir=source, progress=False, scan=False)
    summary = grade_class(subs, settings, echo=lambda *a: None)
    with open(root / "out" / "grades_detailed.csv") as fh:
        rows = list(csv.DictReader(fh))
    cells = {}
    for r in rows:
        cells.setdefault(r["student_id"], {})[r["grade_id"]] = r
    return {"summary": summary, "cells": cells, "out": root / "out"}


def outcome(graded, student):
    return {gid: (float(r["score"]), r["reason"]) for gid, r in graded["cells"][student].items()}


def full(gid):
    return (tinycourse.POINTS[gid], "passed")


def test_every_student_is_graded_without_grader_errors(graded):
    assert set(graded["cells"]) == set(_students())
    assert graded["summary"]["grader_errors"] == 0
    for student, cells in graded["cells"].items():
        assert set(cells) == set(ALL), student


def test_good_student_is_unaffected_by_the_others(graded):
    assert outcome(graded, "good") == {g: full(g) for g in ALL}


def test_wrong_answer_is_recorded_with_its_message_and_diagnosis(graded):
    got = outcome(graded, "wrong")
    assert got[SQUARE] == (0.0, "wrong_answer")
    assert got[CUBE] == full(CUBE) and got[HALVE] == full(HALVE)
    assert "square(3) should be 9" in graded["cells"]["wrong"][SQUARE]["message"]
    report = (graded["out"] / "report.md").read_text()
    assert "| values |" in report


def test_infinite_loop_times_out_and_the_rest_is_graded(graded):
    assert outcome(graded, "loop") == {SQUARE: (0.0, "timeout"), CUBE: full(CUBE), HALVE: full(HALVE)}


def test_infinite_loop_ignoring_sigint_is_killed_and_the_kernel_restarted(graded):
    assert outcome(graded, "nosigint") == {SQUARE: (0.0, "timeout"), CUBE: full(CUBE), HALVE: full(HALVE)}
    assert "killed and restarted" in graded["cells"]["nosigint"][SQUARE]["message"]


def test_os_exit_is_a_crash_and_the_kernel_is_restarted(graded):
    assert outcome(graded, "osexit") == {SQUARE: full(SQUARE), CUBE: (0.0, "crash"), HALVE: full(HALVE)}


def test_segfault_is_a_crash(graded):
    assert outcome(graded, "segfault") == {SQUARE: full(SQUARE), CUBE: full(CUBE), HALVE: (0.0, "crash")}
    assert "SIGSEGV" in graded["cells"]["segfault"][HALVE]["message"]


def test_unbounded_memory_is_out_of_memory(graded):
    assert outcome(graded, "memory") == {SQUARE: (0.0, "out_of_memory"), CUBE: full(CUBE), HALVE: full(HALVE)}


@pytest.mark.skipif(not sandbox.is_root(), reason="RLIMIT_NPROC needs the uid drop, which needs root")
def test_fork_bomb_is_stopped_by_the_process_limit(graded):
    assert outcome(graded, "forkbomb") == {SQUARE: full(SQUARE), CUBE: (0.0, "policy"), HALVE: full(HALVE)}
    assert not sandbox.stray_processes()  # other grading runs (parallel tests) hold their own uids


def test_huge_output_is_capped(graded):
    assert outcome(graded, "print100mb") == {SQUARE: full(SQUARE), CUBE: full(CUBE), HALVE: (0.0, "output_cap")}
    autograded = graded["out"] / "course" / "autograded" / "print100mb" / "tiny" / "tiny.ipynb"
    assert autograded.stat().st_size < 1_000_000


@pytest.mark.parametrize("student", ["badjson", "empty"])
def test_unreadable_notebook_is_ungradable_not_silently_zero(graded, student):
    assert outcome(graded, student) == {g: (0.0, "ungradable") for g in ALL}
    assert graded["cells"][student][SQUARE]["message"]
    assert (graded["out"] / "feedback" / student / "tiny" / "tiny.html").exists()


def restored(gid):
    return (tinycourse.POINTS[gid], "restored_cell")


def test_deleted_grade_cell_is_restored_run_and_scored(graded):
    # the graded notebook is rebuilt from the release: the deleted check is back, runs, and a right
    # answer keeps its points; the change is flagged in the CSV and the report
    assert outcome(graded, "deleted") == {SQUARE: full(SQUARE), CUBE: restored(CUBE), HALVE: full(HALVE)}
    assert "deleted" in graded["cells"]["deleted"][CUBE]["message"]
    report = (graded["out"] / "report.md").read_text()
    assert "| deleted | tiny | test_cube |" in report


def test_duplicated_grade_cell_is_graded_once(graded):
    assert outcome(graded, "duplicated") == {g: full(g) for g in ALL}


def test_grade_cell_turned_into_markdown_is_restored_run_and_scored(graded):
    assert outcome(graded, "markdown") == {SQUARE: full(SQUARE), CUBE: full(CUBE), HALVE: restored(HALVE)}
    assert "markdown" in graded["cells"]["markdown"][HALVE]["message"]


def test_helper_defined_outside_the_exercise_cell_is_named_in_the_message(graded):
    got = outcome(graded, "outside_helper")
    assert got[SQUARE] == (0.0, "wrong_answer") and got[CUBE] == full(CUBE)
    message = graded["cells"]["outside_helper"][SQUARE]["message"]
    assert "`_times` is defined outside the exercise cell; only exercise cells are graded" in message


def test_stderr_and_warnings_are_shown_never_scored(graded):
    assert outcome(graded, "stderr") == {g: full(g) for g in ALL}


def test_a_result_published_before_the_error_scores_nothing(graded):
    got = outcome(graded, "fake_result")
    assert got[CUBE] == (0.0, "wrong_answer") and got[SQUARE] == full(SQUARE)


def test_unknown_kernel_name_is_graded_with_the_course_kernel(graded):
    assert outcome(graded, "kernel") == {g: full(g) for g in ALL}


def _text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def test_feedback_shows_code_and_failures_but_never_hidden_tests(graded):
    pages = sorted((graded["out"] / "feedback").glob("*/tiny/tiny.html"))
    assert len(pages) == len(_students())
    for page in pages:
        text = _text(page)
        assert "square(-7)" not in text and "HIDDEN TESTS" not in text, page
    text = _text(graded["out"] / "feedback" / "hidden_fail" / "tiny" / "tiny.html")
    assert "abs(x) * x" in text                     # the student's code
    assert "hidden: negative inputs" in text        # the failure message
    assert graded["cells"]["hidden_fail"][SQUARE]["reason"] == "wrong_answer"
    page = (graded["out"] / "feedback" / "good" / "tiny" / "tiny.html").read_text()
    assert "<code>test_square</code></a>" in page and ">Test cell<" not in page   # each check named


def test_class_report_and_csvs_are_written(graded):
    out = graded["out"]
    header = (out / "grades.csv").read_text().splitlines()[0]
    assert header == "student_id,assignment,score,max_score"
    assert (out / "grades_detailed.csv").read_text().splitlines()[0] == \
        "student_id,assignment,notebook,grade_id,score,max_score,reason,message"
    assert (out / "report.png").stat().st_size > 10_000
    assert "Pass rate per exercise" in (out / "report.md").read_text()
    assert (out / "nbgrader_grades.csv").exists()


@pytest.mark.skipif(not sandbox.is_root(), reason="uid leases exist only when the grader can change uid")
def test_two_grading_runs_never_share_a_sandbox_uid():
    first, fds1 = sandbox.lease_uids(2)
    try:
        second, fds2 = sandbox.lease_uids(2)
        try:
            assert len(set(first) | set(second)) == 4
            assert set(first) | set(second) <= sandbox.leased_uids()
        finally:
            sandbox.release_uids(fds2)
        assert not set(second) & sandbox.leased_uids()
    finally:
        sandbox.release_uids(fds1)
