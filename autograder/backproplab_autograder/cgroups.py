"""One cgroup per grading job: memory and process limits for everything the job's kernels start.

The launcher moves itself into the job's cgroup before it starts the kernel, so every process of
the job (the kernel, its children, a fork bomb, a detached daemon) is counted together, and the
limits hold *per job*, not per process (RLIMIT_AS and RLIMIT_NPROC stay as a backstop).

cgroup v1 (this project's machines: ``/sys/fs/cgroup/memory`` and ``/sys/fs/cgroup/pids``): the
job's groups are created *below the grader's own groups* (so the grader's own limits still cover
them), with ``memory.limit_in_bytes`` and ``pids.max``; the harness reads the OOM kill counter
(``memory.oom_control``: ``oom_kill``), ``memory.failcnt`` and ``pids.events`` (``max``).
cgroup v2 (unified hierarchy only): one group with ``memory.max``/``pids.max``, counters from
``memory.events`` (``oom_kill``, ``max``) and ``pids.events``. Without root, or without the
controllers, :meth:`JobCgroup.create` says why and the job runs with the rlimits alone.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
ENV_VAR = "BACKPROPLAB_CGROUP"     # json {"memory": path, "pids": path} (or {"unified": path}) for the launcher


def _own(controller: str) -> str | None:
    """This process's cgroup path in ``controller``'s v1 hierarchy ('' for the unified one)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
        if controller == "" and controllers == "":
            return path
    return None


def _read_int(path: Path, key: str | None = None) -> int:
    try:
        text = path.read_text()
    except OSError:
        return 0
    if key is None:
        try:
            return int(text.split()[0])
        except (ValueError, IndexError):
            return 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            try:
                return int(parts[1])
            except ValueError:
                return 0
    return 0


class JobCgroup:
    """The cgroup(s) of one job; ``paths`` maps controller -> folder."""

    def __init__(self, paths: dict[str, str] | None = None):
        self.paths = {k: Path(v) for k, v in (paths or {}).items()}

    # -- the grader's side ---------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, memory_bytes: int, pids: int) -> tuple[JobCgroup | None, str]:
        """Create the job's groups with their limits; returns ``(group, description)`` or ``(None, why)``."""
        if os.geteuid() != 0:
            return None, "no cgroup (not root)"
        paths = {}
        mem, pid = ROOT / "memory", ROOT / "pids"
        if (mem / "memory.limit_in_bytes").exists() and (pid / "pids.max").exists() or \
                ((mem / "cgroup.procs").exists() and (pid / "cgroup.procs").exists()):
            for controller, base in (("memory", mem), ("pids", pid)):
                own = _own(controller)
                if own is None:
                    return None, f"no cgroup ({controller} controller not found in /proc/self/cgroup)"
                paths[controller] = base / own.lstrip("/") / "backproplab" / name
            group = cls(paths)
            try:
                for p in group.paths.values():
                    p.mkdir(parents=True, exist_ok=True)
                (group.paths["memory"] / "memory.limit_in_bytes").write_text(str(memory_bytes))
                (group.paths["pids"] / "pids.max").write_text(str(pids))
            except OSError as exc:
                group.remove()
                return None, f"no cgroup (v1: {exc.strerror or exc})"
            return group, f"cgroup v1 (memory.limit_in_bytes {memory_bytes // 2**20} MiB, pids.max {pids})"
        if (ROOT / "cgroup.controllers").exists():
            own = _own("") or "/"
            path = ROOT / own.lstrip("/") / f"backproplab-{name}"
            group = cls({"unified": str(path)})
            try:
                path.mkdir(parents=True, exist_ok=True)
                (path / "memory.max").write_text(str(memory_bytes))
                (path / "pids.max").write_text(str(pids))
            except OSError as exc:
                group.remove()
                return None, f"no cgroup (v2: {exc.strerror or exc})"
            return group, f"cgroup v2 (memory.max {memory_bytes // 2**20} MiB, pids.max {pids})"
        return None, "no cgroup (no memory and pids controllers mounted)"

    def to_env(self) -> str:
        return json.dumps({k: str(v) for k, v in self.paths.items()})

    @classmethod
    def from_env(cls, text: str | None) -> JobCgroup | None:
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return cls(data) if isinstance(data, dict) and data else None

    def counters(self) -> dict[str, int]:
        """What the kernel observed: OOM kills, hits of the memory limit, refused forks, peak memory."""
        if "unified" in self.paths:
            p = self.paths["unified"]
            return {"oom_kill": _read_int(p / "memory.events", "oom_kill"),
                    "memory_max_hits": _read_int(p / "memory.events", "max"),
                    "pids_max_hits": _read_int(p / "pids.events", "max"),
                    "memory_peak": _read_int(p / "memory.peak")}
        m, p = self.paths.get("memory"), self.paths.get("pids")
        out = {"oom_kill": 0, "memory_max_hits": 0, "pids_max_hits": 0, "memory_peak": 0}
        if m is not None:
            out["oom_kill"] = _read_int(m / "memory.oom_control", "oom_kill")
            out["memory_max_hits"] = _read_int(m / "memory.failcnt")
            out["memory_peak"] = _read_int(m / "memory.max_usage_in_bytes")
        if p is not None:
            out["pids_max_hits"] = _read_int(p / "pids.events", "max")
        return out

    def pids(self) -> list[int]:
        found = set()
        for p in self.paths.values():
            try:
                found.update(int(x) for x in (p / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def kill(self, rounds: int = 40) -> None:
        """SIGKILL every process of the job until none is left (a fork bomb included: pids.max holds it)."""
        for _ in range(rounds):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)

    def remove(self) -> None:
        self.kill()
        for p in self.paths.values():
            for _ in range(20):
                try:
                    p.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)

    # -- the launcher's side ---------------------------------------------------------------------------
    def join(self, pid: int | None = None) -> None:
        """Move ``pid`` (default: this process) into the job's groups; raises OSError on failure."""
        for p in self.paths.values():
            (p / "cgroup.procs").write_text(str(pid or os.getpid()))
