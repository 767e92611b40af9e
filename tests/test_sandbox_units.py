"""Issue 15, the parts that need no class: reasons from observations only, exclusive writes, the
container's command line, the job cgroup, the refusal to grade unprotected."""

from __future__ import annotations

import argparse
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from backproplab_autograder import cgroups, cli, container, launcher, sandbox
from backproplab_autograder.course import SOLUTIONS
from backproplab_autograder.execute import Observation, classify_error, death_reason
from backproplab_autograder.limits import MIB, Limits

LIMITS = Limits(memory_mib=1024, processes=64, file_mib=64)


def test_an_error_is_a_grader_reason_only_when_the_harness_saw_it():
    quiet = Observation()
    assert classify_error(quiet, Observation(), LIMITS, True) is None            # MemoryError("...") raised by hand
    assert classify_error(quiet, Observation(oom_kill=1), LIMITS, True) == "out_of_memory"
    assert classify_error(quiet, Observation(memory_max_hits=3), LIMITS, True) == "out_of_memory"
    assert classify_error(Observation(vm_peak=100 * MIB), Observation(vm_peak=1000 * MIB), LIMITS, False) == \
        "out_of_memory"
    assert classify_error(Observation(vm_peak=1000 * MIB), Observation(vm_peak=1000 * MIB), LIMITS, False) is None
    assert classify_error(quiet, Observation(pids_max_hits=1), LIMITS, True) == "policy"
    assert classify_error(quiet, Observation(processes=40), LIMITS, False) == "policy"
    assert classify_error(quiet, Observation(processes=40), LIMITS, True) is None   # the cgroup is the witness
    assert classify_error(quiet, Observation(largest_file=64 * MIB), LIMITS, True) == "policy"


def test_a_dead_kernel_is_explained_by_its_status_and_the_cgroup_never_by_its_output():
    assert death_reason(3)[0] == "crash"
    assert death_reason(-signal.SIGSEGV)[0] == "crash"
    assert death_reason(-signal.SIGXCPU)[0] == "timeout"
    assert death_reason(128 + signal.SIGXCPU, container=True)[0] == "timeout"   # bwrap: 128 + signal
    assert death_reason(128 + signal.SIGXCPU, container=False)[0] == "crash"
    assert death_reason(-signal.SIGKILL, has_cgroup=False)[0] == "out_of_memory"
    assert death_reason(-signal.SIGKILL, Observation(), Observation(), LIMITS, has_cgroup=True)[0] == "crash"
    assert death_reason(-signal.SIGKILL, Observation(), Observation(oom_kill=1), LIMITS, True)[0] == "out_of_memory"
    assert death_reason(137, Observation(), Observation(oom_kill=1), LIMITS, True, True)[0] == "out_of_memory"


@pytest.mark.parametrize("plant", ["link", "fifo", "file"])
def test_the_launcher_never_writes_through_what_is_in_its_place(tmp_path, plant):
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("original")
    taken = run / f"kernel-{os.getpid()}-0.json"
    if plant == "link":
        os.symlink(victim, taken)
    elif plant == "fifo":
        os.mkfifo(taken)
    else:
        taken.write_text("someone else's")
    path = launcher.create_new(str(run), "kernel", b'{"key": "k"}', 0o400)
    assert Path(path) != taken and Path(path).read_bytes() == b'{"key": "k"}'
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o400
    assert victim.read_text() == "original"
    launcher.write_isolation(str(tmp_path), {"container": "bwrap"})
    assert (run / launcher.ISOLATION).read_text() == '{"container": "bwrap"}'


def test_the_container_binds_nothing_of_the_repository_but_lib():
    r, w = os.pipe()
    os.close(w)
    try:
        args = container.bwrap_argv(uid=60999, connection_fd=r, notebook=None, ipc_dir="/tmp/x/ipc",
                                    rlimits=[("RLIMIT_AS", 1)], tmpfs_bytes=MIB, kernel_args=["--debug"])
    finally:
        os.close(r)
    repo = str(SOLUTIONS.parent)
    binds = [args[i + 1] for i, a in enumerate(args) if a in ("--bind", "--ro-bind", "--ro-bind-try")]
    for b in binds:
        if b.startswith(repo + "/") or b == repo:
            assert b.startswith((repo + "/lib/", repo + "/.venv")), b
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent"):
        assert flag in args
    writable = [args[i + 1] for i, a in enumerate(args) if a == "--bind"]
    assert writable == ["/tmp/x/ipc"]
    for d in ("/tmp", "/var/tmp", "/dev/shm", container.WORKDIR):
        i = args.index(d) if d in args else -1
        assert args[i - 1] == "--tmpfs" and "--size" in args[i - 5:i]


def test_the_container_runs_as_the_sandbox_uid_without_the_repository(tmp_path):
    if container.probe() is not None:
        pytest.skip(f"bubblewrap container unavailable here: {container.probe()}")
    (tmp_path / "ipc").mkdir()
    r, w = os.pipe()
    os.write(w, b"{}")
    os.close(w)
    args = container.bwrap_argv(uid=60999, connection_fd=r, notebook=None, ipc_dir=str(tmp_path / "ipc"),
                                rlimits=[], tmpfs_bytes=MIB, kernel_args=[])
    git = str(SOLUTIONS.parent / ".git")
    args = args[:args.index("-c")] + ["-c", f"import os; print(os.getuid(), os.path.exists({git!r}), "
                                      "sorted(p for p in os.listdir('/proc') if p.isdigit()))"]
    proc = subprocess.run(args, pass_fds=(r,), capture_output=True, text=True, timeout=60)
    os.close(r)
    assert proc.returncode == 0, proc.stderr
    # STAGE2 is not run here (-c replaced), so this is bwrap's own view as root: no repository, own /proc
    assert "False" in proc.stdout and "['1', '2']" in proc.stdout


def test_a_job_cgroup_limits_counts_and_disappears():
    group, note = cgroups.JobCgroup.create(f"unit-{os.getpid()}", 64 * MIB, 8)
    if group is None:
        pytest.skip(f"no cgroup here: {note} (the grader records it in every result)")
    try:
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        group.join(child.pid)
        assert child.pid in group.pids()
        hog = subprocess.Popen([sys.executable, "-c", "b = bytearray(256 * 2**20)\nfor i in range(0, len(b), 4096):"
                                " b[i] = 1\n"], preexec_fn=lambda: group.join())
        assert hog.wait(60) == -signal.SIGKILL
        assert group.counters()["oom_kill"] >= 1 or group.counters()["memory_max_hits"] >= 1
        child.stdin.close()
        child.wait(10)
    finally:
        group.remove()
    assert not any(p.exists() for p in group.paths.values())


def test_grading_unprotected_is_refused_unless_told(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sandbox, "is_root", lambda: False)
    monkeypatch.delenv(sandbox.ALLOW_REDUCED_VAR, raising=False)
    args = argparse.Namespace(unsafe=False, allow_reduced=False, dask=None)
    assert "not root" in sandbox.refuse_unprotected(args)
    assert sandbox.refuse_unprotected(argparse.Namespace(unsafe=False, allow_reduced=True, dask=None)) is None
    assert sandbox.refuse_unprotected(argparse.Namespace(unsafe=True, allow_reduced=False, dask=None)) is None
    (tmp_path / "subs").mkdir()
    assert cli.main([str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "--allow-reduced" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv(sandbox.ALLOW_REDUCED_VAR, "1")
    assert sandbox.refuse_unprotected(args) is None
