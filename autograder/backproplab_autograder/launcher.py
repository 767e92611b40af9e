"""Kernel launcher: the argv of the grading kernelspec. Builds the kernel's sandbox, then execs it.

``python -m backproplab_autograder.launcher -f CONNECTION_FILE`` reads its settings from the
environment the grader sets for each worker:

* ``BACKPROPLAB_GRADE_LIMITS`` (json, see :mod:`limits`),
* ``BACKPROPLAB_SANDBOX_UID``: the uid (and gid) the kernel runs as, when the launcher runs as root,
* ``BACKPROPLAB_SANDBOX_DIR``: the slot's folder ``box`` (see :func:`sandbox.prepare_sandbox`),
* ``BACKPROPLAB_CGROUP``: the job's cgroup (:mod:`cgroups`), which the launcher joins first,
* ``BACKPROPLAB_SANDBOX_NETNS`` = ``1``: a protected job (not ``--unsafe``).

As root with bubblewrap (the normal case), the launcher ``exec``s ``bwrap`` (:mod:`container`): one
container per kernel start, the connection file handed over as a descriptor, the notebook copied into
the container's private working folder; inside, the rlimits are set, the uid dropped and the kernel
exec'd. Without bubblewrap (the *reduced* mode, recorded), the launcher itself sets the rlimits,
enters a new network and mount namespace (folders of the class hidden), drops the uid and execs the
kernel. Either way, what the launcher writes (the kernel's copy of the connection file, the
``isolation.json`` record of what the kernel got) is created in ``box/run``, a folder only root can
modify, with ``O_CREAT | O_EXCL | O_NOFOLLOW``: never in a folder the sandbox uid controls, never
through a link, never into a FIFO. The kernel keeps the pid the kernel manager knows (``exec``).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile

from .limits import MIB, Limits

UID_VAR = "BACKPROPLAB_SANDBOX_UID"
DIR_VAR = "BACKPROPLAB_SANDBOX_DIR"
PYTHON_VAR = "BACKPROPLAB_SANDBOX_PYTHON"      # json: {"python": path, "env": {...}, "site": [...]}
NETNS_VAR = "BACKPROPLAB_SANDBOX_NETNS"        # "1": run the kernel in a new, empty network namespace
HIDE_VAR = "BACKPROPLAB_SANDBOX_HIDE"          # json list of folders the kernel must not see at all
NOTEBOOK_VAR = "BACKPROPLAB_SANDBOX_NOTEBOOK"  # file name of the notebook copy in box/run (for the container)
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


RUN_DIR = "run"        # box/run: root's (0711); connection copies, the isolation record, the notebook copy
IPC_DIR = "ipc"        # box/ipc: the sandbox uid's; the kernel's ipc sockets
HOME_DIR = "home"      # box/home: the sandbox uid's; the working folder when there is no container
ISOLATION = "isolation.json"


def create_new(folder: str, prefix: str, data: bytes, mode: int = 0o600, owner: int | None = None) -> str:
    """Write ``data`` to a new file in ``folder`` (a folder only root can modify): exclusive create,
    never following a link, owner changed on the descriptor. Returns the path."""
    for attempt in range(1000):
        path = os.path.join(folder, f"{prefix}-{os.getpid()}-{attempt}.json")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                         mode)
        except FileExistsError:
            continue
        try:
            os.write(fd, data)
            if owner is not None:
                os.fchown(fd, owner, owner)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return path
    raise OSError("no free file name in " + folder)


def write_isolation(box: str, record: dict) -> None:
    """What this kernel got, for the grader (results) and the tests: in box/run, which the sandbox uid
    can neither write nor list; replaced atomically, never through a link."""
    run = os.path.join(box, RUN_DIR)
    if not os.path.isdir(run) or os.path.islink(run):
        return
    tmp = create_new(run, ".isolation", json.dumps(record).encode())
    os.replace(tmp, os.path.join(run, ISOLATION))


def _rlimits(limits: Limits, dropping: bool) -> list[tuple[str, int]]:
    out = [("RLIMIT_AS", limits.memory_mib * MIB), ("RLIMIT_FSIZE", limits.file_mib * MIB),
           ("RLIMIT_CPU", limits.cpu_seconds), ("RLIMIT_CORE", 0)]
    if dropping:
        out.append(("RLIMIT_NPROC", limits.processes))
    return out


def _pipe_with(data: bytes) -> int:
    """A descriptor to read ``data`` from (the connection file, handed to bwrap; never on disk)."""
    r, w = os.pipe()
    os.write(w, data)  # a few hundred bytes: fits the pipe buffer
    os.close(w)
    os.set_inheritable(r, True)
    return r


def kernel_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPROPLAB_") and k not in (
        "JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "SUDO_USER", "SUDO_COMMAND")}
    env.update({
        "HOME": home,
        "USER": "student",
        "LOGNAME": "student",
        "IPYTHONDIR": os.path.join(home, ".ipython"),
        "MPLCONFIGDIR": os.path.join(home, ".matplotlib"),
        "JUPYTER_RUNTIME_DIR": home,
        "TMPDIR": home,
        "MPLBACKEND": "Agg",
        "MALLOC_ARENA_MAX": "2",          # keeps virtual memory (RLIMIT_AS) close to what is used
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "-f":
        sys.stderr.write("usage: python -m backproplab_autograder.launcher -f CONNECTION_FILE [kernel args]\n")
        return 2
    connection_file, rest = argv[1], argv[2:]
    limits = Limits.from_env()
    box = os.environ.get(DIR_VAR) or os.getcwd()
    uid_text = os.environ.get(UID_VAR, "")
    root = os.geteuid() == 0
    drop = root and uid_text.isdigit()
    uid = int(uid_text) if drop else os.geteuid()
    protected = os.environ.get(NETNS_VAR) == "1"   # not --unsafe
    run = os.path.join(box, RUN_DIR)
    layered = os.path.isdir(run) and not os.path.islink(run)   # sandbox.prepare_sandbox's layout
    home = os.path.join(box, HOME_DIR) if layered else box

    with open(connection_file, "rb") as fh:  # root's runtime dir: the jupyter kernel manager's own file
        info = fh.read()
    record = {"uid": uid if drop else None, "container": None, "network": None, "hidden": [], "cgroup": None,
              "rlimits": [name for name, _ in _rlimits(limits, drop)]}

    from .cgroups import ENV_VAR as CGROUP_VAR
    from .cgroups import JobCgroup

    group = JobCgroup.from_env(os.environ.get(CGROUP_VAR))
    if group is not None and root:
        try:
            group.join()
            record["cgroup"] = {k: str(v) for k, v in group.paths.items()}
        except OSError as exc:
            record["cgroup"] = f"FAILED {exc}"

    from . import container

    why_not = (container.probe() if (root and protected and layered) else
               "not root" if not root else "--unsafe" if not protected else "no sandbox layout")
    if why_not is None:
        record["container"] = "bwrap"
        record["network"] = "new namespace"
        write_isolation(box, record)
        notebook = None
        name = os.environ.get(NOTEBOOK_VAR, "")
        if name and "/" not in name:
            try:
                nfd = os.open(os.path.join(run, name), os.O_RDONLY | os.O_NOFOLLOW)
                os.set_inheritable(nfd, True)
                notebook = (nfd, name)
            except OSError:
                notebook = None
        args = container.bwrap_argv(uid=uid if drop else None, connection_fd=_pipe_with(info), notebook=notebook,
                                    ipc_dir=os.path.join(box, IPC_DIR), rlimits=_rlimits(limits, drop),
                                    tmpfs_bytes=limits.tmpfs_mib * MIB, kernel_args=rest)
        # jupyter interrupts the kernel with SIGINT to its process group: bwrap must not die of it (the
        # kernel, inside, restores the default handler)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        env = kernel_env(container.WORKDIR)
        # the kernel's parent inside is the container's init (pid 1): ipykernel's parent poller would take
        # that for "orphaned" and exit; --die-with-parent ties the container's life to ours instead
        env["JPY_PARENT_PID"] = "1"
        os.execve(args[0], args, env)
        return 1  # not reached
    record["container"] = f"none: {why_not}"

    # Reduced mode (no bwrap, or not root): the kernel runs on the host file system.
    # The connection file holds the HMAC key: the kernel gets its own copy, readable by it only, created
    # in a folder it cannot modify (no link, no FIFO, no truncation of anything else).
    folder = run if layered else tempfile.mkdtemp(prefix="bpl-kernel-")
    own_copy = create_new(folder, "kernel", info, 0o400, uid if drop else None)

    env = kernel_env(home)
    if protected and root:
        error = new_network_namespace()
        record["network"] = "new namespace" if error is None else f"FAILED {error}"
    hide = json.loads(os.environ.get(HIDE_VAR) or "[]")
    if hide and root:
        mirror_exe = json.loads(os.environ.get(PYTHON_VAR) or "{}").get("python") or sys.executable
        try:
            record["hidden"] = hide_folders(hide, keep=[box, sys.prefix, os.path.dirname(mirror_exe)])
        except OSError as exc:
            record["hidden"] = f"FAILED {exc}"
    write_isolation(box, record)
    apply_limits(limits, drop)
    os.chdir(home)
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
