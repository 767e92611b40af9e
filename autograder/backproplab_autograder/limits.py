"""The limits a student's kernel runs under, and how they travel from the grader to the launcher.

Every limit is enforced from outside the student's code: wall time by the grader's execute
preprocessor (interrupt, then kill), output bytes by the same preprocessor, memory, processes,
file size and CPU time by the kernel launcher (``setrlimit`` before the kernel starts, then a drop
to an unprivileged uid when the grader runs as root); memory and processes of the whole job by its
cgroup (:mod:`cgroups`) where the machine has one, the rlimits staying as a backstop; the size of the
container's private tmpfs mounts by bubblewrap (:mod:`container`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

ENV_VAR = "BACKPROPLAB_GRADE_LIMITS"

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Defaults an instructor can accept for the labs: generous for correct code, short for a runaway."""

    cell_timeout: float = 60.0          # wall seconds for one cell
    notebook_timeout: float = 900.0     # wall seconds for a whole notebook
    interrupt_grace: float = 3.0        # seconds a timed-out cell gets to answer SIGINT before the kill
    memory_mib: int = 4096              # RLIMIT_AS of the kernel (virtual memory)
    processes: int = 256                # RLIMIT_NPROC of the sandbox uid (threads count too)
    output_bytes: int = 1 * MIB         # stream + display bytes kept per cell; more stops the cell
    file_mib: int = 64                  # RLIMIT_FSIZE: largest file the kernel may write
    kernel_startup: float = 60.0        # seconds to wait for a kernel to start
    tmpfs_mib: int = 256                # size of each private tmpfs of the container (/tmp, /home/student, ...)

    @property
    def cpu_seconds(self) -> int:
        """RLIMIT_CPU: a backstop above the notebook's wall time (two threads busy all along)."""
        return int(2 * self.notebook_timeout + 30)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Limits:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Limits:
        text = (environ if environ is not None else os.environ).get(ENV_VAR)
        return cls.from_json(text) if text else cls()
