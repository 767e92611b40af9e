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
