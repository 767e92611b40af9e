"""Grade on a Dask distributed cluster: ``backproplab-grade ... --dask ADDRESS`` (see docs/cluster.md).

``ADDRESS`` is a running scheduler (``tcp://host:8786``) or ``local:N`` (a ``LocalCluster`` of N
worker processes, one thread each, on this machine). Every (student, assignment) job becomes one Dask
task that runs :func:`grading.grade_one` on a worker, unchanged: rebuild, scan, sandbox, limits,
nbgrader autograde + feedback. The output folder ``DIR`` (course, work, results, feedback) must be
the same path on the client and on every worker: on a ``LocalCluster`` it is this machine's folder,
on remote workers a shared folder (NFS, Lustre, ...) that the instructor names with ``--out``. The
hidden tests stay where they are today: in ``DIR/course`` (source + gradebook), read by nbgrader on
the worker, never copied into the student's sandbox.

The client alone writes the class files (CSVs, report, exports, the ``crash`` result of a job that
killed its workers); a worker writes its job's result file into ``DIR/results`` (atomically) as
``grade_one`` does today, so a client killed mid-run loses no finished job and a rerun grades only
what has no result.

Faults:

* a worker that dies mid-job (killed, OOM-killed, node lost): Dask reschedules the task on another
  worker. Each job has a watchdog process (:data:`GUARD`, in its own session) that kills the job's
  nbgrader process tree as soon as its worker is gone, so no orphan keeps writing; the retry also
  kills any process of the same job left on its own host, and returns the result file instead of
  grading again when the dead worker had already finished it: one grading, one result.
* a job that kills its worker every time: after ``distributed.scheduler.allowed-failures`` deaths
  (default here: 2, i.e. 3 attempts) Dask gives up with ``KilledWorker``; the client records every
  grade cell of that job with reason ``crash`` (a final result: a rerun does not retry it unless the
  submission changes).
* at most as many jobs are in flight as the cluster has worker threads, so a worker that dies holds
  one job, and an innocent job queued behind a poison one is never blamed for its deaths.
* a scheduler that does not answer: :class:`ClusterUnreachable` within ``CONNECT_TIMEOUT``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import logging
import os
import queue
import socket
import sys
import threading
from pathlib import Path

from . import grading, results, sandbox

CONNECT_TIMEOUT = "5s"
ALLOWED_FAILURES = 2        # worker deaths a job may cause before it is recorded as ``crash``
JOBS_COLUMNS = ["student_id", "assignment", "mode", "protections", "worker", "seconds"]


class ClusterUnreachable(RuntimeError):
    """The scheduler did not answer (or ``local:N`` is malformed)."""


# --- which protections a job had ----------------------------------------------------------------

def protections(settings: grading.Settings) -> str:
    """What protected the kernel of a job graded with ``settings`` in this process, for the result
    file and ``jobs.csv``. As root: every line of the sandbox; not root (a SLURM job, a user's
    ``dask worker``): the reduced mode, said plainly."""
    if settings.unsafe:
        return "none (--unsafe: measurement only)"
    scan = "scan" if settings.scan else "no-scan"
    if sandbox.is_root():
        return f"{scan}+uid-drop+netns+mount-hide+rlimits"
    return f"{scan}+rlimits; REDUCED: not root, no uid drop, no namespaces"


def write_jobs_csv(out: Path, everything: list[dict]) -> None:
    """``DIR/jobs.csv``: per finished job, the mode, the protections that were active, the worker."""
    rows = [{"student_id": r["student_id"], "assignment": r["assignment"], "mode": r.get("mode", ""),
             "protections": r.get("protections", ""), "worker": r.get("worker", ""),
             "seconds": r.get("seconds", "")}
            for r in sorted(everything, key=lambda r: (r["student_id"], r["assignment"]))]
    tmp = Path(out) / ".jobs.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=JOBS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, Path(out) / "jobs.csv")


# --- connecting -----------------------------------------------------------------------------------

def parse_address(address: str) -> tuple[str, int | None]:
    """``("local", N)`` for ``local:N``, ``("remote", None)`` for a scheduler address."""
    if address.startswith("local:") or address == "local":
        n = address.partition(":")[2] or str(os.cpu_count() or 1)
        if not n.isdigit() or int(n) < 1:
            raise ClusterUnreachable(f"--dask {address}: expected local:N with N >= 1 worker processes")
        return "local", int(n)
    return "remote", None


def check_address(address: str, timeout: str = CONNECT_TIMEOUT) -> str | None:
    """None when ``address`` can be used, else a message for the instructor (within ``timeout``)."""
    try:
        kind, _ = parse_address(address)
        if kind == "remote":
            with _quiet_logs():
                from distributed import Client

                Client(address, timeout=timeout, set_as_default=False).close()
    except ClusterUnreachable as exc:
        return str(exc)
    except (OSError, TimeoutError, ValueError) as exc:
        return (f"the Dask scheduler {address} did not answer within {timeout} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); start it (`dask scheduler`) or check "
                f"the address and the firewall")
    return None


@contextlib.contextmanager
def _quiet_logs(level: int = logging.CRITICAL):
    names = ["distributed", "distributed.comm", "distributed.client", "distributed.core", "tornado"]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


@contextlib.contextmanager
def connect(address: str, allowed_failures: int = ALLOWED_FAILURES):
    """A Dask client for ``address``, with the scheduler's ``allowed-failures`` set."""
    import dask
    from distributed import Client, LocalCluster

    kind, n = parse_address(address)
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        if kind == "local":
            with _quiet_logs(logging.ERROR), LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                             dashboard_address=":0", scheduler_port=0,
                                             silence_logs=logging.ERROR) as lc, \
                    Client(lc, set_as_default=False) as client:
                yield client
            return
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterUnreachable(check_address(address) or str(exc)) from exc
        try:
            try:
                client.run_on_scheduler(_set_allowed_failures, allowed_failures)
            except Exception as exc:  # noqa: BLE001 - a scheduler without this package: its own setting stays
                print(f"backproplab-grade: could not set allowed-failures on the scheduler ({type(exc).__name__}); "
                      "start it with DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=2", file=sys.stderr)
            yield client
        finally:
            client.close()


def _set_allowed_failures(n: int, dask_scheduler=None) -> int:
    dask_scheduler.allowed_failures = n
    return n


# --- on the worker -----------------------------------------------------------------------------

class _WorkerState:
    """Per worker process: its sandbox folder, the interpreter its kernels run, and a pool of slots,
    each with its own leased sandbox uid (held until the process ends; the kernel drops the lease
    when the process dies, and the next lease of that uid kills its leftovers)."""

    lock = threading.Lock()
    root: Path | None = None
    python: str | None = None   # computed once, for the first job that needs the sandbox
    free: queue.Queue = queue.Queue()
    uids: dict[int, int | None] = {}
    fds: list[int] = []

    @classmethod
    def setup(cls, settings: grading.Settings) -> None:
        with cls.lock:
            if cls.root is None:
                import atexit
                import shutil

                cls.root = sandbox.make_sandbox_root()
                atexit.register(shutil.rmtree, cls.root, True)
            if cls.python is None and not settings.unsafe:
                python, env = sandbox.sandbox_python(cls.root) if sandbox.is_root() else (None, {})
                cls.python = json.dumps({"python": python, "env": env,
                                         "site": sandbox.grader_site_packages()}) if python else ""

    @classmethod
    def take_slot(cls) -> int:
        try:
            return cls.free.get_nowait()
        except queue.Empty:
            pass
        with cls.lock:
            slot = len(cls.uids)
            uids, fds = sandbox.lease_uids(1)   # [None] when not root
            cls.uids[slot] = uids[0]
            cls.fds += fds
            return slot

    @classmethod
    def give_back(cls, slot: int) -> None:
        cls.free.put(slot)


def _job_marker(course_root: Path, job: grading.Job) -> list[str]:
    return ["backproplab_autograder.nbjob", str(course_root), job.assignment, job.student]


def kill_stale(marker: list[str]) -> int:
    """Kill, on this host, every process still running this job (nbgrader of a worker that died
    mid-job, with its kernel): Dask runs a task once at a time, so such a process is an orphan.
    Returns how many process trees were killed."""
    import psutil

    killed = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        try:
            i = cmd.index(marker[0])
        except ValueError:
            continue
        if cmd[i:i + 4] != marker or proc.pid == os.getpid():
            continue
        try:
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(tree, timeout=5)
        killed += 1
    return killed


# A watchdog process per job, outside the worker's process group: when the worker dies (SIGKILL, OOM
# killer) while grading, it kills that job's nbgrader process tree on this host at once, so the
# retry on another worker (same host or not) never races an orphan for the same files and rows.
GUARD = r"""
import os, sys, time, psutil
pid, born, marker = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
def alive():
    try:
        p = psutil.Process(pid)
        return p.create_time() == born and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
while alive():
    time.sleep(0.25)
for proc in psutil.process_iter(["cmdline"]):
    cmd = proc.info.get("cmdline") or []
    if marker[0] in cmd and cmd[cmd.index(marker[0]):cmd.index(marker[0]) + len(marker)] == marker:
        try:
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for p in tree:
            try:
                p.kill()
            except psutil.Error:
                pass
"""


def _start_guard(marker: list[str]):
    import subprocess

    import psutil

    me = psutil.Process()
    try:
        return subprocess.Popen([sys.executable, "-c", GUARD, str(me.pid), repr(me.create_time()), *marker],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError:
        return None


def run_job(job: grading.Job, course: grading.Course, settings: grading.Settings, job_fn=None) -> dict:
    """The Dask task: one (student, assignment) on this worker. ``job_fn`` (default
    :func:`grading.grade_one`) exists for the tests, which model a submission that takes its worker down."""
    digest = grading.job_hash(job, course, settings.limits, settings.hash_mode())
    finished = grading.load_finished(settings.out, job, course, digest)
    if finished is not None:   # a worker that died after writing the result: graded once
        return finished
    marker = _job_marker(getattr(course, "config_dir", None) or course.root, job)  # nbjob's command line
    kill_stale(marker)
    _WorkerState.setup(settings)
    slot = _WorkerState.take_slot()
    mine = dataclasses.replace(settings, sandbox_root=_WorkerState.root, sandbox_python=_WorkerState.python or "",
                               slot_uids=[_WorkerState.uids.get(k) for k in range(slot + 1)], progress=False)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    guard = _start_guard(marker)
    try:
        res = (job_fn or grading.grade_one)(job, course, mine, slot)
    except Exception as exc:  # noqa: BLE001 - recorded as grader_error (retried by the next run)
        res = error_result(job, course, f"{type(exc).__name__}: {exc}")
    finally:
        _WorkerState.give_back(slot)
        if guard is not None:
            guard.kill()
            guard.wait()
    res["worker"] = worker
    res.setdefault("protections", protections(settings))  # grade_one's own record wins
    if res.get("hash"):
        results.write_json_atomic(grading.result_path(settings.out, job), res)
    return res


def error_result(job: grading.Job, course: grading.Course, message: str, reason: str = "grader_error",
                 digest: str | None = None) -> dict:
    cells = grading._error_cells(course, job, Path(course.notebooks[job.assignment]).stem, message)
    for c in cells:
        c["reason"] = reason
    res = {"student_id": job.student, "assignment": job.assignment,
           "notebook": Path(course.notebooks[job.assignment]).stem, "course_token": course.token,
           "cells": cells, "notes": [], "seconds": 0.0,
           "grader_error": message if reason == "grader_error" else None,
           "score": 0.0, "max_score": float(sum(c["max_score"] for c in cells))}
    if digest:
        res["hash"] = digest
    return res


# --- the client ------------------------------------------------------------------------------------

def _threads(client) -> int:
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # older distributed
        info = client.scheduler_info()
    return sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())


class DaskGrader:
    """Same interface as :class:`grading.Grader` (``run(jobs, course) -> results``, ``skipped``)."""

    job_fn = None   # the tests replace it (a picklable function) to model a poison job

    def __init__(self, settings: grading.Settings, address: str | None = None):
        self.settings = settings
        self.address = address or settings.dask
        self.skipped = 0
        self.crashed: list[str] = []

    def run(self, jobs: list[grading.Job], course: grading.Course, on_done=None) -> list[dict]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        settings = self.settings
        todo, done = [], []
        for job in jobs:
            finished = grading.load_finished(settings.out, job, course,
                                             grading.job_hash(job, course, settings.limits, settings.hash_mode()))
            (done if finished is not None else todo).append(finished if finished is not None else job)
        self.skipped = len(done)
        if not todo:
            return done
        bar = None
        if settings.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="nb", desc=f"grading on {self.address}", dynamic_ncols=True,
                       file=sys.stderr)
        prefix = "grade-" + hashlib.sha256(f"{settings.out}|{course.token}".encode()).hexdigest()[:12]
        try:
            with connect(self.address) as client:
                pending = iter(todo)
                by_key: dict[str, grading.Job] = {}
                ac = as_completed(loop=client.loop)

                def top_up() -> None:
                    limit = max(1, _threads(client))
                    while ac.count() < limit:
                        job = next(pending, None)
                        if job is None:
                            return
                        fut = client.submit(run_job, job, course, settings, self.job_fn,
                                            key=f"{prefix}-{job.student}-{job.assignment}", retries=1)
                        by_key[fut.key] = job
                        ac.add(fut)

                top_up()
                for fut in ac:
                    job = by_key.pop(fut.key)
                    try:
                        res = fut.result()
                    except KilledWorker as exc:
                        res = self._crashed(job, course, exc)
                    except Exception as exc:  # noqa: BLE001 - cancelled, scheduler lost: retried next run
                        res = error_result(job, course, f"dask: {type(exc).__name__}: {exc}")
                    fut.release()
                    done.append(res)
                    if bar is not None:
                        bar.update(1)
                    if on_done:
                        on_done(res)
                    top_up()
        finally:
            if bar is not None:
                bar.close()
        return done

    def _crashed(self, job: grading.Job, course: grading.Course, exc) -> dict:
        """A job that took down ``allowed-failures + 1`` workers: final, reason ``crash``."""
        tries = getattr(exc, "allowed_failures", ALLOWED_FAILURES) + 1
        settings = self.settings
        digest = grading.job_hash(job, course, settings.limits, settings.hash_mode())
        res = error_result(job, course, f"the grading job took down its Dask worker {tries} times "
                                        f"(distributed.scheduler.allowed-failures); not retried", "crash", digest)
        res["mode"] = settings.mode()
        res["protections"] = protections(settings)
        res["notes"].append(f"crash: {tries} worker deaths")
        res["worker"] = "(lost)"
        results.write_json_atomic(grading.result_path(settings.out, job), res)
        self.crashed.append(f"{job.student}/{job.assignment}")
        return res


# --- the shared gradebook ----------------------------------------------------------------------------

LOCK_KEY = int.from_bytes(hashlib.sha256(b"backproplab-gradebook").digest()[:8], "big", signed=True)


@contextlib.contextmanager
def gradebook_lock(db_url: str):
    """Hold a PostgreSQL advisory lock (session level) while nbgrader creates its tables and the
    course/assignment rows, so two graders started together on a fresh gradebook take turns.
    Nothing to do for SQLite (one grader per file)."""
    if not db_url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(db_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
    finally:
        engine.dispose()


def create_gradebook(db_url: str, course_id: str = grading.COURSE_ID) -> None:
    """nbgrader's tables and the course row, created once whoever comes first (under the lock)."""
    if not db_url.startswith("postgresql"):
        return
    import warnings

    from nbgrader.api import Gradebook

    with gradebook_lock(db_url), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Gradebook(db_url, course_id).close()


def create_students(db_url: str, course_id: str, students: list[str]) -> None:
    """The students' rows, made before any job starts. Two jobs of one student starting together would
    otherwise both find no row (nbgrader's ``autograde --create``) and both insert one: the second
    fails on the unique constraint and its notebook is a grader error."""
    if not students:
        return
    import warnings

    from nbgrader.api import Gradebook

    with gradebook_lock(db_url), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(db_url, course_id) as gradebook:
            for student in sorted(set(students)):
                gradebook.update_or_create_student(student)


if __name__ == "__main__":  # pragma: no cover - ``python -m backproplab_autograder.cluster ADDRESS``: a probe
    problem = check_address(sys.argv[1] if len(sys.argv) > 1 else "local:1")
    print(problem or "ok")
    sys.exit(2 if problem else 0)
