"""Warm workers (forkserver.py): every job of a slot is a fresh fork of one pre-imported interpreter, so
one student's job leaves nothing behind for the next one graded in the same slot."""

from __future__ import annotations

import csv
import json

import pytest
from backproplab_autograder import tinycourse
from backproplab_autograder.cli import grade_class
from backproplab_autograder.grading import Settings
from backproplab_autograder.limits import Limits

pytestmark = pytest.mark.slow

# graded first in the only slot: a global, a patched module, a patched builtin, a thread left running,
# in the student's kernel; and answers that only work if that state survived into the next job
LEAKER = {
    "square": ("import builtins, threading, time, math\n"
               "builtins.LEAKED = 41\n"
               "math.sqrt = lambda x: 0.0\n"
               "threading.Thread(target=lambda: time.sleep(600), daemon=False).start()\n"
               "def square(x):\n    return x * x\n"),
}
# graded next: passes only if nothing of the leaker is there (a leaked builtin would change its result)
CLEAN = {
    "square": ("import builtins, math\n"
               "def square(x):\n"
               "    return x * x + getattr(builtins, 'LEAKED', 0) + (0 if math.sqrt(4.0) == 2.0 else 1000)\n"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    source = tinycourse.build(root)
    subs = root / "submitted"
    tinycourse.write_student(subs, "a_leaker", tinycourse.submission(LEAKER))
    tinycourse.write_student(subs, "b_clean", tinycourse.submission(CLEAN))
    tinycourse.write_student(subs, "c_good", tinycourse.submission())
    settings = Settings(out=root / "out", limits=Limits(cell_timeout=10, notebook_timeout=60), jobs=1,
                        source_dir=source, progress=False, scan=False)
    summary = grade_class(subs, settings, echo=lambda *a: None)
    with open(root / "out" / "grades_detailed.csv") as fh:
        rows = list(csv.DictReader(fh))
    return {"summary": summary, "rows": rows, "out": root / "out"}


def test_every_job_ran_in_a_fork_of_the_slots_warm_worker(graded):
    workers = {}
    for student in ("a_leaker", "b_clean", "c_good"):
        res = json.loads((graded["out"] / "results" / student / "tiny.json").read_text())
        workers[student] = res.get("worker")
    assert set(workers.values()) == {"warm"}, workers


def test_nothing_of_one_students_job_reaches_the_next_in_the_same_slot(graded):
    assert graded["summary"]["grader_errors"] == 0
    scores = {(r["student_id"], r["grade_id"]): (float(r["score"]), r["reason"]) for r in graded["rows"]}
    for student in ("a_leaker", "b_clean", "c_good"):
        assert scores[(student, "test_square")] == (tinycourse.POINTS["test_square"], "passed"), (student, scores)


def _server_processes() -> list[int]:
    """Fork servers that are children of this test process."""
    import os
    from pathlib import Path

    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"backproplab_autograder.forkserver" in cmd:
            found.append(int(proc.name))
    return found


def test_a_prestarted_server_takes_its_slots_first_job_and_shutdown_leaves_none_behind(tmp_path):
    """prestart: the slot's first job waits for the server already importing (never a fresh process);
    a server still starting when the grader shuts down closes itself once it is ready."""
    import time

    from backproplab_autograder import forkserver

    before = set(_server_processes())  # an earlier test's server may still be closing itself
    fresh = []
    forkserver.prestart(1)
    try:
        # arguments nbjob refuses: the job fails at once, in a child of the prestarted server
        done = forkserver.run_job(0, ["no-such-course"], tmp_path, {"PATH": "/usr/bin:/bin"}, 60,
                                  lambda *a: fresh.append(a))
        assert fresh == [] and getattr(done, "warm", False), (fresh, done)
        assert done.returncode != 0 and "nbjob" in done.stderr, done
        server = forkserver._SERVERS[0]
        assert set(_server_processes()) - before == {server.proc.pid}
    finally:
        forkserver.shutdown()
    assert server.proc.poll() is not None  # closed and reaped

    forkserver.prestart(2)
    starting = list(forkserver._STARTING.values())
    forkserver.shutdown()          # while both are still importing
    for thread in starting:
        thread.join(60)
    deadline = time.time() + 10
    while set(_server_processes()) - before and time.time() < deadline:
        time.sleep(0.1)
    assert set(_server_processes()) - before == set() and forkserver._SERVERS == {}
