"""Kernel launcher: the argv of the grading kernelspec. Applies the limits, drops privileges, execs ipykernel.

``python -m backproplab_autograder.launcher -f CONNECTION_FILE`` reads its settings from the
environment the grader sets for each worker:

* ``BACKPROPLAB_GRADE_LIMITS`` (json, see :mod:`limits`),
* ``BACKPROPLAB_SANDBOX_UID``: the uid (and gid) the kernel runs as, when the launcher runs as root,
* ``BACKPROPLAB_SANDBOX_DIR``: the working directory, which holds only the student's notebook copy.

Steps, all before any student code exists in the process: copy the connection file into the
sandbox (the original, in root's runtime dir, is not readable by the sandbox uid), set RLIMIT_AS,
RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_CPU and RLIMIT_CORE, drop to the sandbox uid, then ``exec``
the IPython kernel, so that the kernel keeps the pid the kernel manager knows.
"""

from __future__ import annotations

import json
import os
import resource
import sys

from .limits import MIB, Limits

UID_VAR = "BACKPROPLAB_SANDBOX_UID"
DIR_VAR = "BACKPROPLAB_SANDBOX_DIR"
PYTHON_VAR = "BACKPROPLAB_SANDBOX_PYTHON"      # json: {"python": path, "env": {...}, "site": [...]}
NETNS_VAR = "BACKPROPLAB_SANDBOX_NETNS"        # "1": run the kernel in a new, empty network namespace
HIDE_VAR = "BACKPROPLAB_SANDBOX_HIDE"          # json list of folders the kernel must not see at all
CLONE_NEWNET, CLONE_NEWNS = 0x40000000, 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 0x4000, 0x40000


def _libc():
    import ctypes
    import ctypes.util

    return ctypes, ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def hide_folders(paths: list[str], keep: list[str]) -> list[str]:
    """In a new mount namespace, cover each folder with an empty read-only tmpfs (the grading folder,
    the submissions, the source notebooks). A folder holding something the kernel needs (``keep``:
    its own sandbox, its interpreter) is skipped. Needs root. Returns the folders hidden."""
    ctypes, libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0 or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount namespace: " + os.strerror(ctypes.get_errno()))
    hidden = []
    for path in paths:
        path = os.path.realpath(path)
        if not os.path.isdir(path) or path == "/":
            continue
        if any(os.path.commonpath([path, os.path.realpath(k)]) == path for k in keep):
            continue
        if libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      b"size=4k,mode=0555") == 0:
            hidden.append(path)
    return hidden


def new_network_namespace() -> str | None:
    """unshare(CLONE_NEWNET): from now on this process sees only a loopback that is down (no network
    at all, not even the grader's localhost). Needs root (CAP_SYS_ADMIN). Returns an error or None."""
    try:
        ctypes, libc = _libc()
        if libc.unshare(CLONE_NEWNET) != 0:
            return os.strerror(ctypes.get_errno())
    except (OSError, AttributeError) as exc:
        return str(exc)
    return None

# Run by a mirrored interpreter: add the grader's site-packages (with their .pth files), then start
# the kernel exactly as ``python -m ipykernel_launcher`` would.
BOOTSTRAP = (
    "import runpy, site, sys\n"
    "for _p in {site!r}:\n"
    "    site.addsitedir(_p)\n"
    "sys.argv = ['ipykernel_launcher'] + sys.argv[1:]\n"
    "runpy.run_module('ipykernel_launcher', run_name='__main__', alter_sys=True)\n"
)


def _set(limit: int, value: int) -> None:
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY and value > hard:
        value = hard
    resource.setrlimit(limit, (value, value))


def apply_limits(limits: Limits, dropping_privileges: bool) -> None:
    _set(resource.RLIMIT_AS, limits.memory_mib * MIB)
    _set(resource.RLIMIT_FSIZE, limits.file_mib * MIB)
    _set(resource.RLIMIT_CPU, limits.cpu_seconds)
    _set(resource.RLIMIT_CORE, 0)
    if dropping_privileges:
        # Counted per uid, and ignored for root: only meaningful once we are the sandbox uid.
        _set(resource.RLIMIT_NPROC, limits.processes)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "-f":
        sys.stderr.write("usage: python -m backproplab_autograder.launcher -f CONNECTION_FILE [kernel args]\n")
        return 2
    connection_file, rest = argv[1], argv[2:]
    limits = Limits.from_env()
    sandbox = os.environ.get(DIR_VAR) or os.getcwd()
    uid_text = os.environ.get(UID_VAR, "")
    drop = os.geteuid() == 0 and uid_text.isdigit()
    uid = int(uid_text) if drop else os.geteuid()

    # The connection file holds the HMAC key: give the kernel its own copy, readable by it only.
    with open(connection_file, "rb") as fh:
        info = fh.read()
    own_copy = os.path.join(sandbox, ".kernel-connection.json")
    fd = os.open(own_copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(info)
    if drop:
        os.chown(own_copy, uid, uid)

    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPLAB_")}
    env.update({
        "HOME": sandbox,
        "IPYTHONDIR": os.path.join(sandbox, ".ipython"),
        "MPLCONFIGDIR": os.path.join(sandbox, ".matplotlib"),
        "JUPYTER_RUNTIME_DIR": sandbox,
        "TMPDIR": sandbox,
        "MPLBACKEND": "Agg",
        "MALLOC_ARENA_MAX": "2",          # keeps virtual memory (RLIMIT_AS) close to what is used
        "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    isolation = []
    if os.environ.get(NETNS_VAR) == "1" and os.geteuid() == 0:
        error = new_network_namespace()
        isolation.append("network: new namespace" if error is None else f"network: FAILED {error}")
    hide = json.loads(os.environ.get(HIDE_VAR) or "[]")
    if hide and os.geteuid() == 0:
        mirror_exe = json.loads(os.environ.get(PYTHON_VAR) or "{}").get("python") or sys.executable
        try:
            done = hide_folders(hide, keep=[sandbox, sys.prefix, os.path.dirname(mirror_exe)])
            isolation.append("hidden: " + " ".join(done))
        except OSError as exc:
            isolation.append(f"hidden: FAILED {exc}")
    if isolation:  # for the grader's tests and the instructor: what this kernel could not do
        with open(os.path.join(sandbox, ".isolation"), "w") as fh:
            fh.write("\n".join(isolation) + "\n")
    apply_limits(limits, drop)
    os.chdir(sandbox)
    if drop:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.umask(0o077)
    mirror = json.loads(os.environ.get(PYTHON_VAR) or "{}")
    if mirror.get("python"):
        exe = mirror["python"]
        env.update(mirror.get("env", {}))
        args = [exe, "-c", BOOTSTRAP.format(site=mirror.get("site", [])), "-f", own_copy, *rest]
    else:
        exe = sys.executable
        args = [exe, "-m", "ipykernel_launcher", "-f", own_copy, *rest]
    os.execve(exe, args, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
