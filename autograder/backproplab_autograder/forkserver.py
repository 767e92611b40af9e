"""Warm grading workers: one pre-imported interpreter per worker slot that forks a fresh process per job.

A grading job (:mod:`nbjob`) used to start a new Python process, which spent seconds importing nbgrader,
nbconvert, torch (the judge's) and the grader before the first cell ran. A slot's **fork server** does
those imports once; for each job it forks a child that runs :func:`nbjob.main` in a session of its own,
with the job's environment, working folder and log files. The child is a copy of a process that never
ran a job: nothing of one student's job (the kernel is a separate, sandboxed process that dies with the
job; the judge's state lives in the child) reaches the next one. The sandbox, the cgroup and the limits
stay per job: they are made by the child exactly as by a fresh process.

The grader talks to a server over a pipe, one JSON line per job; a timeout kills the child's session
(``killpg``), never the server. If a server dies it is started again; if one cannot be started the job
runs as a plain subprocess (the result is the same, only slower).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ENV_VAR = "BACKPROPLAB_FORKSERVER"   # "0": every job in a fresh process (measurements, debugging)
LOG_DIR_VAR = "BACKPROPLAB_JOB_LOG_DIR"  # where a job's stdout and stderr files go (the job's work folder)
_SERVERS: dict[int, Server] = {}
_STARTING: dict[int, threading.Thread] = {}  # servers being started ahead of their first job (prestart)
_LOCK = threading.Lock()
_GENERATION = [0]  # bumped by shutdown(): a server that finishes starting after it is closed at once


class NotStarted(RuntimeError):
    """The server did not take the job (it is gone or out of step): the job has not run."""


class Server:
    """The grader's handle on one slot's fork server."""

    def __init__(self) -> None:
        self.broken = False
        self.proc = subprocess.Popen([sys.executable, "-m", "backproplab_autograder.forkserver"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     start_new_session=True)
        line = self.proc.stdout.readline()
        if json.loads(line or "{}").get("ready") is not True:
            self.close()
            raise RuntimeError("the fork server did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.broken

    def run(self, args: list[str], cwd: Path, env: dict, timeout: float | None) -> subprocess.CompletedProcess:
        out_path = Path(env.get(LOG_DIR_VAR, cwd)) / f".job-{os.getpid()}-{time.time_ns()}"
        request = {"args": args, "cwd": str(cwd), "env": env, "stdout": f"{out_path}.out", "stderr": f"{out_path}.err"}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            started = json.loads(self.proc.stdout.readline() or "{}")
        except (OSError, ValueError) as exc:
            raise NotStarted(str(exc)) from exc
        pid = started.get("pid")
        if not isinstance(pid, int):
            raise NotStarted("the fork server did not start the job")
        status: dict = {}
        reader = threading.Thread(target=lambda: status.update(json.loads(self.proc.stdout.readline() or "{}")),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        killed = reader.is_alive()
        if killed:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            reader.join(30)
            if reader.is_alive():  # no status line: this server's pipe is out of step, never reuse it
                self.broken = True
        out = _read_and_remove(request["stdout"])
        err = _read_and_remove(request["stderr"])
        code = status.get("status", -9)
        if killed:
            code = -9
            err += f"\n[backproplab-grade] killed after {timeout:.0f} s"
        done = subprocess.CompletedProcess(args, code, out, err)
        done.warm = True  # type: ignore[attr-defined]
        return done

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


def _read_and_remove(path: str) -> str:
    try:
        with open(path, errors="replace") as fh:
            text = fh.read()
        os.unlink(path)
        return text
    except OSError:
        return ""


def prestart(slots: int) -> None:
    """Start the servers of slots ``0..slots-1`` now, in the background: their imports (about 3.7 s each)
    then overlap the grader's set-up (which keeps one core busy) instead of delaying the first jobs."""
    if os.environ.get(ENV_VAR, "1") == "0":
        return
    for slot in range(max(1, slots)):
        with _LOCK:
            if slot in _SERVERS or slot in _STARTING:
                continue
            thread = _STARTING[slot] = threading.Thread(target=_start, args=(slot, _GENERATION[0]), daemon=True,
                                                        name=f"forkserver-{slot}")
        thread.start()


def _start(slot: int, generation: int) -> None:
    try:
        server: Server | None = Server()
    except (OSError, RuntimeError, ValueError):
        server = None  # the slot's first job starts one itself (or runs as a fresh process)
    with _LOCK:
        _STARTING.pop(slot, None)
        if server is not None and generation == _GENERATION[0] and slot not in _SERVERS:
            _SERVERS[slot] = server
            server = None
    if server is not None:
        server.close()


def run_job(slot: int, args: list[str], cwd: Path, env: dict, timeout: float | None,
            fallback) -> subprocess.CompletedProcess:
    """Run ``python -m backproplab_autograder.nbjob ARGS`` for ``slot``: in a child of the slot's fork server,
    else through ``fallback(cmd, cwd, env, timeout)`` (a fresh process)."""
    cmd = [sys.executable, "-m", "backproplab_autograder.nbjob", *args]
    if os.environ.get(ENV_VAR, "1") == "0":
        return fallback(cmd, cwd, env, timeout)
    starting = _STARTING.get(slot)
    if starting is not None:  # prestarted and still importing: wait for it rather than start another
        starting.join()
    with _LOCK:
        server = _SERVERS.get(slot)
        if server is None or not server.alive():
            try:
                server = _SERVERS[slot] = Server()
            except (OSError, RuntimeError, ValueError):
                _SERVERS.pop(slot, None)
                return fallback(cmd, cwd, env, timeout)
    try:
        return server.run(args, cwd, env, timeout)
    except NotStarted:  # the server could not take the job: a fresh process runs it
        with _LOCK:
            _SERVERS.pop(slot, None)
        server.close()
        return fallback(cmd, cwd, env, timeout)


def shutdown() -> None:
    """Close every server; one still starting closes itself when it is ready (never waited for here)."""
    with _LOCK:
        _GENERATION[0] += 1
        for server in _SERVERS.values():
            server.close()
        _SERVERS.clear()


# -- the server --------------------------------------------------------------------------------------

def _warm() -> None:
    """Everything a job imports, imported once (no thread pool, socket or kernel is started here)."""
    import nbconvert  # noqa: F401
    import nbgrader.apps  # noqa: F401
    import nbgrader.preprocessors  # noqa: F401
    import torch  # noqa: F401

    from . import execute, judge, nbjob, scoring  # noqa: F401

    _warm_the_judge()


def _warm_the_judge() -> None:
    """What the judge of every job would otherwise do for itself on first use, done once here: the labs'
    import blocks (the course library, matplotlib, IPython's display: about 0.4 s a job) and torch's
    optimizers, whose first step imports much of torch (about 0.9 s in a job whose grade cells compare
    with ``torch.optim.Adam``). Only library code runs here, never a student's."""
    import importlib
    import pkgutil

    import torch

    os.environ.setdefault("MPLBACKEND", "Agg")  # the jobs' own setting (grading.grading_env)
    try:
        import backproplab
    except ImportError:  # a grader without the course library: nothing of it to warm
        return
    for info in pkgutil.walk_packages(backproplab.__path__, "backproplab."):
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001, S112 - a module that cannot load here loads (or fails) in the job
            continue
    for module in ("IPython.display", "matplotlib.pyplot", "tqdm.auto"):
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001, S112
            continue
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    for make in (torch.optim.Adam, torch.optim.SGD):
        p.grad = torch.ones_like(p)
        make([p], lr=0.1).step()


def _child(request: dict) -> None:
    """In the forked child: become the job's process (own session, environment, folder, logs) and run it."""
    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request["env"].items()})
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    from . import nbjob

    code = 1
    try:
        code = nbjob.main(list(request["args"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the job's failure is its exit status, with the traceback in its log
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve() -> int:
    from .nbjob import _exit_with_parent

    _warm()
    _exit_with_parent()
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        pid = os.fork()
        if pid == 0:
            try:
                _child(request)
            finally:
                os._exit(1)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"pid": pid, "status": code}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
