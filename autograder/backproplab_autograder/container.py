"""One container per kernel start, built by bubblewrap (``/usr/bin/bwrap``, Debian ``bubblewrap``).

The launcher (root, on the host) ``exec``s ``bwrap`` with the command line :func:`bwrap_argv` builds:

* new PID, mount, network, IPC, UTS (and, where possible, cgroup) namespaces; ``--die-with-parent``:
  when the kernel manager kills the kernel, every process of the container dies with it;
* a root file system that holds only read-only binds of the system folders the interpreter needs
  (``/usr`` and the merged-usr links, a few files of ``/etc``), the interpreter's installation, the
  grader's virtual environment (site-packages) and the course's ``lib/`` packages: nothing of the
  repository (``.git``, ``solutions/``), the course, the gradebook, other students, the submissions
  or the output folder exists in it;
* ``/proc`` of the container's own PID namespace, a minimal ``/dev``;
* private, size-limited tmpfs mounts for ``/tmp``, ``/var/tmp``, ``/dev/shm`` and the working folder
  ``/home/student`` (which receives a copy of the student's notebook): everything the kernel writes is
  gone when the container ends;
* the connection file handed over as an inherited descriptor (``--ro-bind-data``): the grader writes
  nothing into a folder the student controls;
* one read-write bind: the folder of the kernel's ``ipc`` sockets (owned by the sandbox uid), at the
  same path as on the host, so that nbclient (outside) reaches the kernel (inside) with no network.

Inside, :data:`STAGE2` (still root, already confined) applies the rlimits, drops to the sandbox uid
(no capability survives ``setuid``) and ``exec``s the IPython kernel.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from functools import lru_cache

WORKDIR = "/home/student"
CONNECTION = "/run/kernel/connection.json"
KERNEL_PACKAGES = ("backproplab",)   # the course's own packages the kernel imports (lib/)
DISABLE_VAR = "BACKPROPLAB_NO_CONTAINER"  # "1": do not use bwrap (tests of the reduced mode)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/fonts",
             "/etc/alternatives", "/etc/mime.types", "/etc/nsswitch.conf")

# Run by the interpreter inside the container, as root: limits, uid drop, exec the kernel.
STAGE2 = r"""
import json, os, resource, signal, sys
cfg = json.loads(sys.argv[1])
for name, value in cfg["rlimits"]:
    limit = getattr(resource, name)
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY and value > hard:
        value = hard
    resource.setrlimit(limit, (value, value))
uid = cfg["uid"]
if uid is not None and os.geteuid() == 0:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.geteuid() == 0 or os.getuid() == 0:
        os._exit(71)
os.umask(0o077)
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", cfg["connection"], *sys.argv[2:]])
"""


def bwrap_path() -> str | None:
    return shutil.which("bwrap") or (os.path.exists("/usr/bin/bwrap") and "/usr/bin/bwrap") or None


@lru_cache(maxsize=1)
def probe() -> str | None:
    """None when bwrap can build a container here (root, namespaces allowed), else why not."""
    if os.environ.get(DISABLE_VAR) == "1":
        return f"container disabled ({DISABLE_VAR}=1)"
    exe = bwrap_path()
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    if os.geteuid() != 0:
        return "not root"
    try:
        proc = subprocess.run([exe, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                               "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                               "--tmpfs", "/tmp", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap failed to start ({exc})"
    if proc.returncode != 0:
        return f"bwrap cannot create namespaces here ({(proc.stderr or '').strip()[:200]})"
    return None


def _real(path: str) -> str:
    return os.path.realpath(path)


def kernel_binds() -> list[str]:
    """The host folders the kernel needs, read-only: the interpreter, its site-packages, lib/."""
    paths = {_real(sys.prefix), _real(sys.base_prefix), _real(sys.exec_prefix), _real(sys.base_exec_prefix),
             os.path.dirname(_real(sys.executable))}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p and os.path.isdir(p):
            paths.add(_real(p))
    for name in KERNEL_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for loc in (spec.submodule_search_locations or []) if spec else []:
            paths.add(_real(loc))
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and os.path.isdir(libdir):
        paths.add(_real(libdir))
    # a folder inside another bound folder needs no bind of its own; system folders are bound anyway
    keep = []
    for p in sorted(paths):
        if any(p == s or p.startswith(s + "/") for s in SYSTEM_DIRS):
            continue
        if any(p.startswith(k + "/") for k in keep):
            continue
        keep.append(p)
    return keep


def bwrap_argv(*, uid: int | None, connection_fd: int, notebook: tuple[int, str] | None, ipc_dir: str,
               rlimits: list[tuple[str, int]], tmpfs_bytes: int, kernel_args: list[str]) -> list[str]:
    """The full command line: ``bwrap [options] python -c STAGE2 CONFIG [kernel args]``."""
    import json

    args = [bwrap_path() or "bwrap", "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    made: set[str] = set()

    def parents(dest: str) -> list[str]:
        # bwrap creates missing parent folders with mode 0700: make them 0755 first, so the uid can pass
        out = []
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if d not in made:
                made.add(d)
                out += ["--perms", "0755", "--dir", d]
        return out

    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    made.add("/etc")
    args += ["--perms", "0755", "--dir", "/etc"]
    for f in ETC_FILES:
        args += ["--ro-bind-try", f, f]
    size = str(int(tmpfs_bytes))
    args += ["--proc", "/proc", "--dev", "/dev"]
    for d in ("/tmp", "/var/tmp", "/dev/shm", WORKDIR):
        args += parents(d) + ["--size", size, "--perms", "1777", "--tmpfs", d]
        made.add(d)
    # after the private tmpfs mounts: an interpreter or checkout that lives under /tmp (a CI clone) is
    # bound on top of them, not hidden by them
    for p in kernel_binds():
        args += parents(p) + ["--ro-bind", p, p]
    # the library without its reference helpers (workerlib.py), over lib/backproplab
    from . import workerlib

    args += ["--ro-bind", str(workerlib.view()), str(workerlib.source_dir())]
    args += parents(ipc_dir) + ["--bind", ipc_dir, ipc_dir]
    args += parents(CONNECTION) + ["--perms", "0444", "--ro-bind-data", str(connection_fd), CONNECTION]
    if notebook is not None:
        fd, name = notebook
        args += ["--perms", "0666", "--file", str(fd), f"{WORKDIR}/{name}"]
    args += ["--chdir", WORKDIR]
    config = {"uid": uid, "rlimits": rlimits, "connection": CONNECTION}
    python = sys.executable  # the venv's python: its pyvenv.cfg and site-packages are bound
    args += [python, "-c", STAGE2, json.dumps(config), *kernel_args]
    return args
