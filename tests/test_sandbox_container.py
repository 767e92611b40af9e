"""Issue 15: the sandbox as a real boundary.

One tiny class is graded (scan off: the sandbox alone) with every protection: bubblewrap's container,
the sandbox uid, the job's cgroup. Students probe the boundary from inside (what they can see, write,
keep), try to redirect what the grader writes for the kernel (links and FIFOs in place of
``.kernel-connection.json`` and ``.isolation``, then a kernel crash so that the launcher runs again),
and hold memory in several processes at once. A second class, graded with the container switched off
(the reduced mode: uid, network namespace, hidden folders), gets the same redirect attacks: the
launcher writes only in a folder the sandbox uid cannot modify, so they fail there too.

Each of these fails on the grader before issue 15: the repository's ``.git`` and ``solutions/`` were
visible, ``/proc`` showed the host, ``/tmp`` was the host's, the launcher wrote through a student's
link as root, and three processes held more memory together than the limit.
"""

from __future__ import annotations

import csv
import json
import os
import stat
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from backproplab_autograder import cgroups, container, sandbox, tinycourse
from backproplab_autograder.cli import grade_class
from backproplab_autograder.course import SOLUTIONS
from backproplab_autograder.grading import Settings
from backproplab_autograder.limits import Limits

pytestmark = pytest.mark.slow
REPO = SOLUTIONS.parent


def _needs_root_and_bwrap():
    if not sandbox.is_root():
        pytest.skip("the container needs root (the grader records the reduced mode without it)")
    why = container.probe()
    if why:
        pytest.skip(f"bubblewrap container unavailable here: {why} (the grader records the reduced mode)")


PROBE = '''\
import os, socket

def square(x):
    return x * x

def _look(label, path):
    print(label, "VISIBLE" if os.path.exists(path) else "ABSENT", flush=True)

for label, path in {paths!r}.items():
    _look(label, path)
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print("PIDS", pids, flush=True)
print("UID", os.getuid(), os.geteuid(), flush=True)
print("HOSTNAME", socket.gethostname(), flush=True)
for folder in ("/tmp", "/var/tmp", "/dev/shm", os.getcwd()):
    with open(os.path.join(folder, "{marker}"), "w") as fh:
        fh.write("left by the probe")
    print("WROTE", folder, flush=True)
try:
    open("/usr/bin/bpl-written-by-student", "w").write("x")
    print("USR WRITABLE", flush=True)
except OSError as exc:
    print("USR READONLY", type(exc).__name__, flush=True)
'''

# Replace what the launcher used to write (cwd, and the ipc folder, the one bind the kernel can write)
# by links to a victim file and by FIFOs, then kill the kernel: the launcher runs again on restart.
REDIRECT = '''\
import json, os
from ipykernel.connect import get_connection_file

def square(x):
    return x * x

_info = json.load(open(get_connection_file()))
_places = [os.getcwd()]
if _info.get("transport") == "ipc":
    _places.append(os.path.dirname(_info["ip"]))
for _place in _places:
    for _name in (".kernel-connection.json", ".isolation", "isolation.json"):
        _path = os.path.join(_place, _name)
        try:
            if os.path.lexists(_path):
                os.unlink(_path)
            if {fifo!r}:
                os.mkfifo(_path)
            else:
                os.symlink({victim!r}, _path)
            print("PLANTED", _path, flush=True)
        except OSError as exc:
            print("NOT PLANTED", _path, exc, flush=True)
'''
CRASH = "import os\nos._exit(3)\n"

# Three processes each hold 300 MiB (touched), reported over a pipe; the kernel holds 200 MiB: 1.1 GiB
# against a 1 GiB job. Under RLIMIT_AS alone (per process) all of them hold their memory together.
HOGS = '''\
import os, time, select

def cube(x):
    return x * x * x

_kernel_ballast = bytearray(200 * 2**20)
for _i in range(0, len(_kernel_ballast), 4096):
    _kernel_ballast[_i] = 1
_r, _w = os.pipe()
_kids = []
for _k in range(3):
    _pid = os.fork()
    if _pid == 0:
        os.close(_r)
        _hog = bytearray(300 * 2**20)
        for _i in range(0, len(_hog), 4096):
            _hog[_i] = 1
        os.write(_w, b"h")
        time.sleep(4)
        os._exit(0)
    _kids.append(_pid)
os.close(_w)
_held, _deadline = 0, time.time() + 8
while time.time() < _deadline:
    if select.select([_r], [], [], 0.2)[0]:
        _chunk = os.read(_r, 16)
        if not _chunk:
            break
        _held += len(_chunk)
_status = [os.waitpid(_p, 0)[1] for _p in _kids]
print("HELD", _held, "STATUS", _status, flush=True)
if _held == 3:
    print("ALL HELD TOGETHER", flush=True)
'''

# Fill every private tmpfs (256 MiB each by default) with 60 MiB files: about 1 GiB of memory that no
# process maps (RLIMIT_AS cannot see it), charged to the job's cgroup: the kernel is OOM-killed.
SHM_HOG = """\
import os

def halve(x):
    return x / 2

_chunk = b"x" * (60 * 2**20)
for _folder in ("/dev/shm", "/tmp", "/var/tmp", os.getcwd()):
    for _k in range(5):
        try:
            with open(os.path.join(_folder, f"fill{_k}"), "wb") as _fh:
                _fh.write(_chunk)
        except OSError as _exc:
            print("FULL", _folder, _exc.errno, flush=True)
            break
print("FILLED WITHOUT LIMIT", flush=True)
"""


def _printed(out: Path, student: str) -> str:
    nb = nbformat.read(str(out / "course" / "autograded" / student / "tiny" / "tiny.ipynb"), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")


def _rows(out: Path) -> dict:
    with open(out / "grades_detailed.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cells = {}
    for r in rows:
        cells.setdefault(r["student_id"], {})[r["grade_id"]] = r
    return cells


def _victims() -> tuple[Path, dict]:
    folder = Path(tempfile.mkdtemp(prefix="bpl-victim-"))
    os.chmod(folder, 0o755)
    victim = folder / "root-owned.txt"
    victim.write_text("original\n")
    os.chmod(victim, 0o644)
    return folder, {"path": victim, "text": victim.read_text(), "stat": os.stat(victim)}


def _grade(root: Path, students: dict, limits: Limits) -> dict:
    source = tinycourse.build(root)
    subs = root / "submitted"
    for name, nb in students.items():
        tinycourse.write_student(subs, name, nb)
    out = root / "out"
    settings = Settings(out=out, limits=limits, jobs=2, source_dir=source, progress=False, scan=False)
    summary = grade_class(subs, settings, echo=lambda *a: None)
    return {"summary": summary, "cells": _rows(out), "out": out, "source": source, "subs": subs}


def _redirect_students(victim: Path) -> dict:
    sub = tinycourse.submission
    return {"link": sub({"square": REDIRECT.format(fifo=False, victim=str(victim)), "cube": CRASH}),
            "fifo": sub({"square": REDIRECT.format(fifo=True, victim=str(victim)), "cube": CRASH})}


@pytest.fixture(scope="module")
def contained(tmp_path_factory):
    _needs_root_and_bwrap()
    root = tmp_path_factory.mktemp("contained")
    marker = f"bpl-probe-{os.getpid()}-{time.time_ns()}"
    out = root / "out"
    paths = {
        "repo .git": str(REPO / ".git"),
        "repo solutions": str(SOLUTIONS),
        "repo autograder": str(REPO / "autograder"),
        "output folder": str(out),
        "gradebook": str(out / "course" / "gradebook.db"),
        "other student (intake)": str(out / "work" / "submitted" / "good" / "tiny" / "tiny.ipynb"),
        "submissions folder": str(root / "submitted"),
        "course source": str(root / "source"),
        "grader's /root": "/root/.bash_history",
        "host /etc/shadow": "/etc/shadow",
    }
    folder, victim = _victims()
    students = {"good": tinycourse.submission(),
                "probe": tinycourse.submission({"square": PROBE.format(paths=paths, marker=marker)}),
                "hogs": tinycourse.submission({"cube": HOGS}),
                "shm_hog": tinycourse.submission({"halve": SHM_HOG}),
                **_redirect_students(victim["path"])}
    limits = Limits(cell_timeout=20, notebook_timeout=90, interrupt_grace=2, memory_mib=1024, processes=64)
    graded = _grade(root, students, limits)
    yield {**graded, "marker": marker, "victim": victim, "paths": paths}
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


FULL = {g: (p, "passed") for g, p in tinycourse.POINTS.items()}


def _outcome(graded, student):
    return {g: (float(r["score"]), r["reason"]) for g, r in graded["cells"][student].items()}


def test_container_grades_like_before(contained):
    assert contained["summary"]["grader_errors"] == 0
    assert _outcome(contained, "good") == FULL
    assert _outcome(contained, "probe") == FULL


def test_inside_the_container_nothing_of_the_repository_course_or_class_exists(contained):
    text = _printed(contained["out"], "probe")
    for label in contained["paths"]:
        assert f"{label} ABSENT" in text, (label, text)
    assert "USR READONLY" in text and "USR WRITABLE" not in text
    assert not Path("/usr/bin/bpl-written-by-student").exists()


def test_proc_shows_only_the_jobs_processes_and_the_uid_is_dropped(contained):
    text = _printed(contained["out"], "probe")
    line = next(ln for ln in text.splitlines() if ln.startswith("PIDS"))
    pids = json.loads(line.split(" ", 1)[1])
    assert len(pids) <= 4 and max(pids) < 50, pids  # the container's init, the kernel, ls: not the host's
    uid_line = next(ln for ln in text.splitlines() if ln.startswith("UID")).split()
    assert int(uid_line[1]) >= sandbox.UID_BASE and int(uid_line[2]) >= sandbox.UID_BASE
    assert "HOSTNAME sandbox" in text


def test_files_written_in_tmp_shm_and_the_working_folder_are_gone_after_the_job(contained):
    text = _printed(contained["out"], "probe")
    assert text.count("WROTE") == 4
    marker = contained["marker"]
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not (Path(folder) / marker).exists(), folder
    left = []
    for top in Path(tempfile.gettempdir()).glob("bpl-sandbox-*"):  # other runs' folders come and go meanwhile
        for dirpath, _dirs, files in os.walk(top, onerror=lambda exc: None):
            left += [os.path.join(dirpath, f) for f in files if f == marker]
    assert not left, left


def test_links_and_fifos_in_place_of_the_kernels_files_change_nothing_outside(contained):
    victim = contained["victim"]
    st = os.stat(victim["path"])
    assert victim["path"].read_text() == victim["text"]
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_size) == \
        (victim["stat"].st_uid, victim["stat"].st_gid, stat.S_IMODE(victim["stat"].st_mode), victim["stat"].st_size)
    for student in ("link", "fifo"):
        assert "PLANTED" in _printed(contained["out"], student), student
        got = _outcome(contained, student)
        assert got["test_square"] == FULL["test_square"] and got["test_halve"] == FULL["test_halve"], got
        assert got["test_cube"] == (0.0, "crash"), got  # the kernel died and was restarted: graded on
    data = json.loads((contained["out"] / "results" / "link" / "tiny.json").read_text())
    assert data["restarts"] >= 1


def test_memory_is_limited_per_job_not_per_process(contained):
    text = _printed(contained["out"], "hogs")
    assert "ALL HELD TOGETHER" not in text
    reason = contained["cells"]["hogs"]["test_cube"]["reason"]
    assert "HELD" in text or reason == "out_of_memory", (text, reason)
    if "HELD" in text:  # the kernel survived: one of the hogs was killed (SIGKILL) by the job's cgroup
        status = json.loads(text.split("STATUS", 1)[1].splitlines()[0])
        assert any(os.WIFSIGNALED(s) and os.WTERMSIG(s) == 9 for s in status), status


def test_memory_in_tmpfs_counts_for_the_job_and_the_oom_kill_is_recorded(contained):
    # out_of_memory comes from the cgroup's OOM kill counter (no MemoryError was raised anywhere)
    got = _outcome(contained, "shm_hog")
    assert got["test_halve"] == (0.0, "out_of_memory"), (got, _printed(contained["out"], "shm_hog"))
    assert got["test_square"] == FULL["test_square"] and got["test_cube"] == FULL["test_cube"]
    assert "out-of-memory killer" in contained["cells"]["shm_hog"]["test_halve"]["message"]
    assert "FILLED WITHOUT LIMIT" not in _printed(contained["out"], "shm_hog")


def test_every_result_says_which_protections_were_active(contained):
    data = json.loads((contained["out"] / "results" / "good" / "tiny.json").read_text())
    iso = data["isolation"]
    assert iso["container"] == "bwrap" and iso["uid"] >= sandbox.UID_BASE and iso["network"] == "new namespace"
    assert "container(bwrap)" in data["protections"] and "uid" in data["protections"]
    with open(contained["out"] / "jobs.csv", newline="") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert "container(bwrap)" in rows["good"]["protections"]
    if iso["cgroup"].startswith("cgroup"):
        assert "cgroup" in data["protections"]


def test_no_job_cgroup_or_process_is_left(contained):
    for controller in ("memory", "pids"):
        own = cgroups._own(controller)
        if own is None:
            continue
        base = cgroups.ROOT / controller / own.lstrip("/") / "backproplab"
        left = [p.name for p in base.glob("job-*")] if base.is_dir() else []
        assert not [n for n in left if f"-{os.getpid()}-" in n]
    assert not sandbox.stray_processes()


# --- the reduced mode (no container): the launcher still never writes where the student can redirect ---

@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    if not sandbox.is_root():
        pytest.skip("the uid drop needs root")
    root = tmp_path_factory.mktemp("reduced")
    folder, victim = _victims()
    old = os.environ.get(container.DISABLE_VAR)
    os.environ[container.DISABLE_VAR] = "1"
    try:
        limits = Limits(cell_timeout=20, notebook_timeout=90, interrupt_grace=2, memory_mib=1024, processes=64)
        graded = _grade(root, {"good": tinycourse.submission(), **_redirect_students(victim["path"])}, limits)
    finally:
        if old is None:
            os.environ.pop(container.DISABLE_VAR, None)
        else:
            os.environ[container.DISABLE_VAR] = old
    yield {**graded, "victim": victim}
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def test_reduced_mode_links_and_fifos_change_nothing_and_the_mode_is_recorded(reduced):
    assert reduced["summary"]["grader_errors"] == 0
    victim = reduced["victim"]
    assert victim["path"].read_text() == victim["text"]
    st = os.stat(victim["path"])
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (victim["stat"].st_uid, stat.S_IMODE(victim["stat"].st_mode))
    for student in ("link", "fifo"):
        assert "PLANTED" in _printed(reduced["out"], student), student
        got = _outcome(reduced, student)
        assert got["test_square"] == FULL["test_square"] and got["test_cube"] == (0.0, "crash"), got
    data = json.loads((reduced["out"] / "results" / "good" / "tiny.json").read_text())
    assert data["isolation"]["container"].startswith("none")
    assert data["protections"].startswith("scan reduced") or "reduced" in data["protections"]
    assert "missing: container" in data["protections"]
