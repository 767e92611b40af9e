"""Where a student's kernel runs: its kernelspec, its working directory, its uid, and its clean-up.

Worker slot ``k`` runs its kernels as uid ``UID_BASE + k`` when the grader is root, so that the
process limit applies to that student alone and a clean-up (kill every process of the uid) can
never reach another worker's kernel. Sandboxes live in a folder under the system temp directory
that every uid can traverse but not list; see :func:`prepare_sandbox` for the layout of a slot (root's
``run/``, the uid's ``home/`` and ``ipc/``). The kernel itself runs in a bubblewrap container
(:mod:`container`) when the machine allows it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

KERNEL_NAME = "backproplab-grader"
UID_BASE = 60000


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


UID_SPAN = 1000  # uids UID_BASE .. UID_BASE + UID_SPAN - 1 are the grader's
LEASE_DIR = Path("/tmp/backproplab-uid-leases")


def slot_uid(slot: int) -> int | None:
    """The default uid of worker ``slot``'s kernels, or None when the grader cannot change uid."""
    return UID_BASE + slot if is_root() else None


def _lease_file(uid: int) -> int:
    LEASE_DIR.mkdir(mode=0o700, exist_ok=True)
    return os.open(LEASE_DIR / f"{uid}.lock", os.O_CREAT | os.O_RDWR, 0o600)


def lease_uids(count: int) -> tuple[list[int | None], list[int]]:
    """Reserve ``count`` sandbox uids for this grading run, exclusively.

    Each uid is held through an ``flock`` on its lease file for as long as the returned file
    descriptors stay open (the kernel drops the lock if the grader dies), so two grading runs on one
    machine never share a uid, and killing "every process of my uid" can never hit another run's
    kernels. Returns the uids (``None`` each when not root) and the descriptors to close at the end.
    """
    if not is_root():
        return [None] * count, []
    import fcntl

    uids, fds = [], []
    for uid in range(UID_BASE, UID_BASE + UID_SPAN):
        fd = _lease_file(uid)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        kill_uid(uid)  # leftovers of a run that died before cleaning up
        uids.append(uid)
        fds.append(fd)
        if len(uids) == count:
            return uids, fds
    for fd in fds:
        os.close(fd)
    raise RuntimeError(f"no free sandbox uid among {UID_BASE}..{UID_BASE + UID_SPAN - 1}")


def release_uids(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def leased_uids() -> set[int]:
    """The sandbox uids some grading run holds right now."""
    import fcntl

    held = set()
    if not LEASE_DIR.is_dir():
        return held
    for path in LEASE_DIR.glob("*.lock"):
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            held.add(int(path.stem))
        finally:
            os.close(fd)
    return held


def stray_processes(span: int = 16) -> dict[int, list[int]]:
    """Processes left under sandbox uids that no grading run holds: there must be none."""
    held = leased_uids()
    return {uid: pids for uid in range(UID_BASE, UID_BASE + span) if uid not in held
            for pids in [uid_pids(uid)] if pids}


def write_kernelspec(kernels_dir: Path, python: str = sys.executable) -> Path:
    """A kernelspec whose argv goes through :mod:`launcher`; put ``kernels_dir``'s parent on JUPYTER_PATH."""
    spec_dir = kernels_dir / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [python, "-m", "backproplab_autograder.launcher", "-f", "{connection_file}"],
        "display_name": "Backprop Lab (grading sandbox)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def _reachable(path: Path) -> bool:
    """Whether a uid other than the owner can reach ``path`` (every ancestor searchable by others)."""
    path = Path(os.path.realpath(path))
    for parent in [*reversed(path.parents)]:
        if not os.stat(parent).st_mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o004)


def sandbox_python(root: Path) -> tuple[str | None, dict[str, str]]:
    """An interpreter the sandbox uid can run, and the environment it needs.

    The grader's own interpreter is used when every uid can reach it. When it lives in a private
    folder (pyenv under /root, mode 0700), its installation minus site-packages is mirrored by hard
    links (a copy where links fail) into ``root/python``, and the kernel runs that one with the
    grader's site-packages added (see :mod:`launcher`). Returns ``(None, {})`` in the first case.
    """
    exe = Path(os.path.realpath(sys.executable))
    base = Path(os.path.realpath(sys.base_prefix))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    libdir = Path(sysconfig.get_config_var("LIBDIR") or base / "lib")
    if all(_reachable(p) for p in (exe, stdlib / "os.py")) and (not libdir.exists() or _reachable(libdir)):
        return None, {}
    dest = Path(root) / "python"
    skip = {os.path.realpath(p) for p in site_packages_of_base()}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in skip]
        rel = os.path.relpath(dirpath, base)
        target = dest / rel
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o755)
        for name in filenames:
            src = os.path.join(dirpath, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), target / name)
                continue
            try:
                os.link(src, target / name)
            except OSError:
                shutil.copy2(src, target / name)
    mirrored = dest / os.path.relpath(exe, base)
    return str(mirrored), {"LD_LIBRARY_PATH": str(dest / os.path.relpath(libdir, base))}


def site_packages_of_base() -> list[str]:
    base = os.path.realpath(sys.base_prefix)
    return [p for p in {sysconfig.get_paths(vars={"base": base, "platbase": base})["purelib"],
                        sysconfig.get_paths(vars={"base": base, "platbase": base})["platlib"]}]


def grader_site_packages() -> list[str]:
    """The site-packages folders the kernel needs (the grader's venv: torch, ipykernel, the course's lib)."""
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def make_sandbox_root() -> Path:
    """A fresh folder for this run's sandboxes: traversable (0711) but not listable by other uids."""
    root = Path(tempfile.mkdtemp(prefix="bpl-sandbox-"))
    os.chmod(root, 0o711)
    return root


def prepare_sandbox(root: Path, slot: int, notebook: Path | None, uid: int | None) -> Path:
    """Empty the slot's sandbox and lay it out (see :mod:`launcher`); returns the slot's folder ``box``.

    ``box`` (root, 0711) holds ``run/`` (root, 0711: the kernel's connection copies and the isolation
    record, created there exclusively and never through a link; a root-only copy of the notebook for
    the container), ``home/`` (the sandbox uid's working folder when there is no container, with a
    copy of the notebook) and ``ipc/`` (the uid's: the kernel's sockets). Nothing root writes for the
    kernel lives in a folder the uid can modify.
    """
    box = Path(root) / f"slot{slot}"
    if uid is not None:
        kill_uid(uid)
    if box.is_symlink() or box.exists():
        if box.is_symlink():
            box.unlink()
        else:
            shutil.rmtree(box, ignore_errors=True)
    box.mkdir(mode=0o711)
    os.chmod(box, 0o711)
    for name, mode in (("run", 0o711), ("home", 0o700), ("ipc", 0o700)):
        (box / name).mkdir(mode=mode)
        os.chmod(box / name, mode)
    if notebook is not None and Path(notebook).is_file():
        data = Path(notebook).read_bytes()
        for folder, mode in (("run", 0o600), ("home", 0o600)):
            fd = os.open(box / folder / Path(notebook).name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
    if uid is not None:
        for path in [box / "home", box / "ipc", *(box / "home").rglob("*")]:
            os.lchown(path, uid, uid)
    return box


def uid_pids(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry))
                        break
        except (OSError, ValueError):
            continue
    return pids


def kill_uid(uid: int, rounds: int = 20) -> int:
    """Kill every process of ``uid``; returns how many were still there at the first look.

    ``kill(-1, SIGKILL)`` sent *as that uid* reaches every process of the uid in one system call
    (the way to stop a fork bomb: no process can fork in between). A short-lived child drops to
    the uid to send it; repeated until /proc shows nothing left.
    """
    if uid == 0:
        raise ValueError("refusing to kill root's processes")
    first = len(uid_pids(uid))
    setpriv, kill = shutil.which("setpriv"), shutil.which("kill") or "/bin/kill"
    for _ in range(rounds):
        if not uid_pids(uid):
            break
        if setpriv:  # no fork of this (threaded) process needed
            subprocess.run([setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", kill, "-9", "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        else:
            pid = os.fork()
            if pid == 0:  # child: become the uid, kill all its processes, leave
                try:
                    os.setgid(uid)
                    os.setuid(uid)
                    os.kill(-1, signal.SIGKILL)
                except BaseException:
                    pass
                os._exit(0)
            os.waitpid(pid, 0)
        time.sleep(0.05)
    return first


ALLOW_REDUCED_VAR = "BACKPROPLAB_ALLOW_REDUCED"   # "1": same as --allow-reduced (CI, scripts)


def refuse_unprotected(args) -> str | None:
    """Why ``backproplab-grade`` must not grade here without being told, or None.

    Without root the kernels would run with the instructor's own rights: no uid drop, no
    namespaces, no container, no cgroup (only the rlimits, the rebuild and the scan). That is refused
    unless ``--allow-reduced`` (or ``BACKPROPLAB_ALLOW_REDUCED=1``) says so; ``--unsafe`` (measurement)
    and ``--dask`` (the workers record their own protections) are not concerned. As root without
    bubblewrap the grader runs in the reduced mode (uid, network namespace, hidden folders, cgroup) and
    every result file and ``jobs.csv`` says so."""
    if getattr(args, "unsafe", False) or getattr(args, "allow_reduced", False) or getattr(args, "dask", None):
        return None
    if os.environ.get(ALLOW_REDUCED_VAR) == "1" or is_root():
        return None
    return ("not root: a student's code would run with your rights (no uid drop, no namespaces, no container, "
            "no cgroup; only the rlimits, the rebuild and the scan). Grade as root, or pass --allow-reduced to "
            "grade anyway (every result file and jobs.csv record the reduced mode)")
