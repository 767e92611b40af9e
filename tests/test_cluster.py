"""Grading on a Dask cluster (``--dask``, cluster.py): same grades as the local pool, worker faults,
an unreachable scheduler, two graders on one fresh PostgreSQL gradebook, the SLURM recipe, the bulk
export.

Every grading test uses the tiny course (no torch) with feedback off, to stay within ~2 minutes on a
shared 2-core machine."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from backproplab_autograder import cluster, exports_bulk, grading, tinycourse
from backproplab_autograder.cli import grade_class, main
from backproplab_autograder.grading import Settings
from backproplab_autograder.limits import Limits

from tests.test_grading_postgres import postgres  # noqa: F401 - the throw-away PostgreSQL server fixture

REPO = Path(__file__).resolve().parents[1]
WRONG_CUBE = {"cube": "def cube(x):\n    return 0\n"}


def _class(root: Path, students: dict[str, dict | None]) -> tuple[Path, Path]:
    source = tinycourse.build(root)
    subs = root / "subs"
    for name, replace in students.items():
        tinycourse.write_student(subs, name, tinycourse.submission(replace))
    return source, subs


def _settings(out: Path, source: Path, dask: str | None = None, **kw) -> Settings:
    return Settings(out=out, limits=Limits(cell_timeout=20), jobs=2, source_dir=source, progress=False,
                    feedback=False, dask=dask, **kw)


def _detailed(out: Path) -> list[tuple]:
    with open(out / "grades_detailed.csv", newline="") as fh:
        return sorted((r["student_id"], r["grade_id"], r["score"], r["reason"]) for r in csv.DictReader(fh))


def _orphans(course_root: Path) -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "backproplab_autograder.nbjob" in (p.info.get("cmdline") or []) and
            str(course_root) in (p.info.get("cmdline") or [])]


def _cmdline(proc) -> list[str]:
    import psutil

    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def _status(proc) -> str:
    import psutil

    try:
        return proc.status()
    except psutil.Error:
        return psutil.STATUS_ZOMBIE


# --- the same grades as the local pool -------------------------------------------------------------

@pytest.mark.slow
def test_a_class_graded_on_local_2_gives_the_same_rows_as_the_local_pool(tmp_path):
    source, subs = _class(tmp_path, {"ann": None, "bob": {"halve": "def halve(x):\n    return x\n"}})
    pool = grade_class(subs, _settings(tmp_path / "pool", source), echo=lambda *a: None)
    dask = grade_class(subs, _settings(tmp_path / "dask", source, dask="local:2"), echo=lambda *a: None)
    assert pool["grader_errors"] == dask["grader_errors"] == 0
    assert _detailed(tmp_path / "dask") == _detailed(tmp_path / "pool")
    assert {r[0]: r[3] for r in _detailed(tmp_path / "dask") if r[1] == "test_halve"}["bob"] == "wrong_answer"
    with open(tmp_path / "dask" / "jobs.csv", newline="") as fh:
        jobs = list(csv.DictReader(fh))
    assert [j["student_id"] for j in jobs] == ["ann", "bob"]
    assert all(j["protections"] and re.match(r".+:\d+$", j["worker"]) for j in jobs)  # host:pid of the worker
    # the class-wide export, read in one query, is nbgrader's own export of the same gradebook
    course = tmp_path / "dask" / "course"
    nbg = tmp_path / "nbgrader_export.csv"
    proc = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export", "--to", str(nbg)],
                          cwd=course, capture_output=True, text=True, env=grading.grading_env(course / "jupyter"))
    assert proc.returncode == 0, proc.stderr
    bulk = tmp_path / "bulk.csv"
    exports_bulk.write(f"sqlite:///{course / 'gradebook.db'}", bulk)
    # the same header and rows; students with the same (empty) name come in id order, where nbgrader
    # leaves their order to the database (here: the order the workers happened to finish in)
    ours, theirs = bulk.read_text().splitlines(), nbg.read_text().splitlines()
    assert ours[0] == theirs[0] and sorted(ours[1:]) == sorted(theirs[1:]) and len(ours) == 3
    assert ours[1:] == sorted(ours[1:])


# --- a worker killed mid-job ------------------------------------------------------------------------

@pytest.mark.slow
def test_a_worker_killed_by_pid_mid_job_loses_nothing_and_the_job_is_graded_once(tmp_path):
    import dask
    import psutil
    from distributed import Client, LocalCluster

    students = {"ann": None, "bob": WRONG_CUBE, "cy": None}
    source, subs = _class(tmp_path, students)
    out = tmp_path / "out"
    killed: dict = {}
    with dask.config.set({"distributed.scheduler.allowed-failures": cluster.ALLOWED_FAILURES}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                         silence_logs=40) as lc, Client(lc, set_as_default=False) as watcher:
        stop = threading.Event()

        def assassin():
            seen: dict[str, float] = {}
            pids = watcher.run(os.getpid)   # worker address -> pid
            while not stop.is_set() and not killed:
                for addr, keys in watcher.processing().items():
                    for key in keys:
                        pid = pids[addr]
                        below = psutil.Process(pid).children(recursive=True)   # nbgrader, kernel, guard
                        if any("backproplab_autograder.nbjob" in _cmdline(p) for p in below):
                            seen.setdefault(key, time.monotonic())
                        if key in seen and time.monotonic() - seen[key] > 2:   # nbgrader has been at it
                            killed.update(key=key, pid=pid, below=len(below))
                            os.kill(pid, signal.SIGKILL)
                            _, alive = psutil.wait_procs(below, timeout=30)  # a loaded machine: give them time
                            killed["survivors"] = [p for p in alive if _status(p) != psutil.STATUS_ZOMBIE]
                            return
                time.sleep(0.2)

        thread = threading.Thread(target=assassin, daemon=True)
        thread.start()
        try:
            summary = grade_class(subs, _settings(out, source, dask=lc.scheduler_address), echo=lambda *a: None)
        finally:
            stop.set()
            thread.join(10)
    assert killed, "no job ran long enough to be killed"
    assert killed["below"] >= 2 and killed["survivors"] == []   # the job's processes died with the worker
    assert summary["grader_errors"] == 0
    assert sorted(r["student_id"] for r in summary["results"]) == ["ann", "bob", "cy"]   # once each
    victim = next(r for r in summary["results"] if killed["key"].endswith(f"-{r['student_id']}-tiny"))
    assert not victim["worker"].endswith(f":{killed['pid']}")   # graded again, elsewhere
    with open(out / "grades.csv", newline="") as fh:
        assert {r["student_id"]: r["score"] for r in csv.DictReader(fh)} == {"ann": "4", "bob": "3", "cy": "4"}
    assert _detailed(out).count(("bob", "test_cube", "0", "wrong_answer")) == 1
    assert not _orphans(out / "course")   # the dead worker's nbgrader did not outlive the job


@pytest.mark.slow
def test_a_client_killed_mid_run_leaves_no_process_behind_and_a_rerun_grades_only_the_rest(tmp_path):
    students = {"ann": None, "bob": WRONG_CUBE, "cy": None, "dee": WRONG_CUBE}
    source, subs = _class(tmp_path, students)
    out = tmp_path / "out"
    exe = Path(sys.executable).parent / "backproplab-grade"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(exe), str(subs), "--out", str(out), "--source", str(source), "--dask", "local:2",
           "--no-feedback", "--no-progress", "--cell-timeout", "20"]
    client = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 240
    while not list((out / "results").glob("*/*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    client.kill()
    client.wait()
    deadline = time.monotonic() + 15   # the workers leave with their client, the job watchdogs clean up
    while _orphans(out / "course") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _orphans(out / "course")
    finished = len(list((out / "results").glob("*/*.json")))
    assert 1 <= finished < 4, finished
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr[-2000:]
    assert re.search(rf"graded 4 notebook\(s\) of 4 student\(s\) \({finished} already done\)", again.stdout), \
        again.stdout
    with open(out / "grades.csv", newline="") as fh:
        assert {r["student_id"]: r["score"] for r in csv.DictReader(fh)} == \
            {"ann": "4", "bob": "3", "cy": "4", "dee": "3"}


# --- a job that kills its worker every time ------------------------------------------------------------

def poison_job(job, course, settings, slot):
    """Models a submission that takes its worker down (the OOM killer choosing the worker, a
    segfault in the worker, a node that reboots): the sandboxed kernel itself cannot reach the worker
    (another uid, its own namespaces), so the job function kills the worker process directly, every
    attempt, after leaving a mark."""
    if job.student == "poison":
        with open(settings.out / "work" / "poison-attempts", "a") as fh:
            fh.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return grading.grade_one(job, course, settings, slot)


@pytest.mark.slow
def test_a_job_that_kills_its_worker_every_time_is_recorded_as_crash_after_the_retry_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster.DaskGrader, "job_fn", staticmethod(poison_job))
    source, subs = _class(tmp_path, {"good": None, "poison": None})
    out = tmp_path / "out"
    summary = grade_class(subs, _settings(out, source, dask="local:2"), echo=lambda *a: None)
    attempts = (out / "work" / "poison-attempts").read_text().split()
    assert len(attempts) == cluster.ALLOWED_FAILURES + 1 and len(set(attempts)) == len(attempts)  # 3 workers
    rows = {(r[0], r[1]): r for r in _detailed(out)}
    assert {rows[k][3] for k in rows if k[0] == "poison"} == {"crash"}
    assert {rows[k][3] for k in rows if k[0] == "good"} == {"passed"}   # not blamed for the deaths
    assert summary["grader_errors"] == 0
    with open(out / "grades_detailed.csv", newline="") as fh:
        msg = next(r["message"] for r in csv.DictReader(fh) if r["student_id"] == "poison")
    assert "took down its Dask worker 3 times" in msg
    # final: a rerun does not try it again (the same submission would take the workers down again)
    again = grade_class(subs, _settings(out, source, dask="local:2"), echo=lambda *a: None)
    assert again["skipped"] == 2
    assert len((out / "work" / "poison-attempts").read_text().split()) == cluster.ALLOWED_FAILURES + 1


# --- an unreachable scheduler ------------------------------------------------------------------------

def test_an_unreachable_scheduler_gives_a_clear_message_within_seconds(tmp_path, capsys):
    started = time.monotonic()
    code = main([str(tmp_path), "--out", str(tmp_path / "out"), "--dask", "tcp://127.0.0.1:1"])
    took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and took < 10, (code, took)
    assert "tcp://127.0.0.1:1 did not answer" in err and "dask scheduler" in err
    assert not (tmp_path / "out").exists()   # nothing started


def test_a_malformed_local_cluster_is_refused():
    assert "local:N" in cluster.check_address("local:0")
    assert cluster.check_address("local:2") is None


# --- two graders on a fresh PostgreSQL gradebook ----------------------------------------------------

@pytest.mark.slow
def test_two_graders_started_together_on_a_fresh_postgresql_gradebook_both_finish_right(tmp_path, postgres):  # noqa: F811
    from nbgrader.api import Gradebook

    source = tinycourse.build(tmp_path)
    want = {"p1": 4.0, "p2": 3.0, "q1": 3.0, "q2": 4.0}
    for name, score in want.items():
        tinycourse.write_student(tmp_path / f"subs-{name[0]}", name,
                                 tinycourse.submission(None if score == 4.0 else WRONG_CUBE))
    exe = Path(sys.executable).parent / "backproplab-grade"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    procs = [subprocess.Popen([str(exe), str(tmp_path / f"subs-{g}"), "--out", str(tmp_path / f"out-{g}"),
                               "--source", str(source), "--db-url", postgres, "--dask", "local:1",
                               "--no-feedback", "--quiet", "--cell-timeout", "20"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for g in ("p", "q")]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (so, se) in zip(procs, outs):
        assert p.returncode == 0, so + se[-3000:]
        assert "UniqueViolation" not in se
    with Gradebook(postgres, grading.COURSE_ID) as gb:
        assert sorted(s.id for s in gb.students) == sorted(want)
        assert [a.name for a in gb.assignments] == ["tiny"]
        assert {s: gb.find_submission("tiny", s).score for s in want} == want
    for g in ("p", "q"):
        with open(tmp_path / f"out-{g}" / "grades.csv", newline="") as fh:
            assert {r["student_id"]: float(r["score"]) for r in csv.DictReader(fh)} == \
                {s: v for s, v in want.items() if s[0] == g}
    # the bulk export reads the shared gradebook: both graders' students, one query
    assert sorted(r["student_id"] for r in exports_bulk.rows(postgres)) == sorted(want)


CREATE_GRADEBOOK = """
import sys, time
from backproplab_autograder import cluster
url, start = sys.argv[1], float(sys.argv[2])
while time.time() < start:
    pass
try:
    cluster.create_gradebook(url)
    print("ok")
except Exception as exc:
    print(type(exc).__name__, str(exc).splitlines()[0])
"""


@pytest.mark.slow   # starts a PostgreSQL server
def test_graders_creating_a_fresh_postgresql_gradebook_at_the_same_instant_all_succeed(postgres):  # noqa: F811
    """Without the advisory lock, nbgrader's ``create_all`` of concurrent processes collides
    (``UniqueViolation`` on ``pg_type``): seen on this very set-up before the fix."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CREATE DATABASE fresh"))
    engine.dispose()
    url = postgres.replace("/postgres?", "/fresh?")
    start = time.time() + 4
    procs = [subprocess.Popen([sys.executable, "-c", CREATE_GRADEBOOK, url, str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["ok"] * 4, outs


@pytest.mark.slow   # starts a PostgreSQL server
def test_the_gradebook_lock_makes_a_second_holder_wait(postgres):  # noqa: F811
    order = []

    def second():
        with cluster.gradebook_lock(postgres):
            order.append("second")

    with cluster.gradebook_lock(postgres):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(1.0)
        order.append("first")
    t.join(30)
    assert order == ["first", "second"]


# --- the SLURM recipe of docs/cluster.md --------------------------------------------------------------

def test_the_slurm_recipe_of_the_docs_builds_a_slurmcluster_whose_job_script_renders():
    pytest.importorskip("dask_jobqueue")
    text = (REPO / "docs" / "cluster.md").read_text()
    block = re.search(r"<!-- slurm-recipe -->\s*```python\n(.*?)```", text, re.S)
    assert block, "docs/cluster.md lost its SLURM recipe"
    ns: dict = {}
    exec(compile(block.group(1), "docs/cluster.md", "exec"), ns)
    slurm = ns["cluster"]
    try:
        script = slurm.job_script()
    finally:
        slurm.close()
    assert "#SBATCH" in script and "--nthreads 1" in script
    assert re.search(r"#SBATCH -t 0?4:00:00", script)
    assert "distributed.cli.dask_worker" in script or "dask worker" in script or "dask-worker" in script


# --- protections and the jobs file -------------------------------------------------------------------

def test_protections_say_reduced_when_not_root(monkeypatch, tmp_path):
    s = Settings(out=tmp_path)
    monkeypatch.setattr(cluster.sandbox, "is_root", lambda: False)
    assert "REDUCED" in cluster.protections(s) and "no uid drop" in cluster.protections(s)
    monkeypatch.setattr(cluster.sandbox, "is_root", lambda: True)
    assert "uid-drop" in cluster.protections(s)
    cluster.write_jobs_csv(tmp_path, [{"student_id": "a", "assignment": "tiny", "mode": "safe",
                                       "protections": "p", "worker": "h:1", "seconds": 1.5, "cells": []}])
    assert (tmp_path / "jobs.csv").read_text().splitlines() == \
        ["student_id,assignment,mode,protections,worker,seconds", "a,tiny,safe,p,h:1,1.5"]
