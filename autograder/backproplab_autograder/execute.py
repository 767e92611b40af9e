"""nbgrader preprocessors used by the class grader, configured into ``Autograde`` and ``GenerateFeedback``.

:class:`SandboxedExecute` replaces nbgrader's ``Execute`` in the autograde pipeline. It runs every
cell the way ``Execute`` does (nbclient, errors allowed), in the grading kernelspec (see
:mod:`sandbox` and :mod:`launcher`), and adds what a class of real submissions needs:

* a wall-time limit per cell (SIGINT first; a kernel that does not answer within the grace
  period is killed and restarted) and per notebook (cells past the budget are not run);
* an output cap per cell (the output is truncated and the cell is stopped);
* survival of a dead kernel (``os._exit``, a segfault, a kill): the cell is marked, a new kernel is
  started, the import/setup cells and the solution cells that ran before are replayed, and
  grading goes on with the next cell;
* grade cells the pre-check flagged as deleted or turned into markdown are not run: they get an
  error output, so nbgrader's ``SaveAutoGrades`` scores them 0;
* a record per cell of why it failed, written next to the results for :mod:`results`.

Every cell that did not complete normally ends with an error output, so nbgrader's own scoring
(a grade cell with an error scores 0) stays the single source of the points.

:class:`FeedbackScrub` runs in ``GenerateFeedback`` after ``ClearHiddenTests``: it replaces the
traceback of every grade cell by its first line, because an IPython traceback quotes the source
lines around the failing line, and that line can sit in a hidden test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from time import monotonic

from backproplab import remote
from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

from . import container, neutralise, sandbox
from . import judge as judge_mod
from .cgroups import ENV_VAR as CGROUP_VAR
from .cgroups import JobCgroup
from .launcher import DIR_VAR, ISOLATION, NETNS_VAR, NOTEBOOK_VAR, RUN_DIR, UID_VAR
from .limits import MIB, Limits
from .records import Reason

RECORDS_VAR = "BACKPROPLAB_RECORDS_DIR"
SUBMITTED_VAR = "BACKPROPLAB_SUBMITTED_DIR"
SANDBOX_ROOT_VAR = "BACKPROPLAB_SANDBOX_ROOT"
SLOT_VAR = "BACKPROPLAB_SLOT"
JUDGE_VAR = "BACKPROPLAB_JUDGE"   # "0": run grade cells in the kernel (the pre-wave-2 way; tests only)
LOOP_VAR = "BACKPROPLAB_JUDGE_LOOP"  # "0": one execute request per judge request (the bench's comparison)
CALLBACK_PREFIX, READY_PROMPT, ANSWER_PREFIX, STOP = (remote.CALLBACK_PROMPT, remote.READY_PROMPT,
                                                     remote.ANSWER_PROMPT, remote.STOP)
_LOOP_CODE = "__import__('backproplab.remote', fromlist=['serve_loop']).serve_loop()"

MISSING_KEY = "backproplab"   # cell.metadata[MISSING_KEY]["missing_cell"] = why, set by the pre-check

def error_output(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


@dataclass
class Observation:
    """What the harness itself saw of the job's kernels (never what the student's code printed)."""

    oom_kill: int = 0           # the cgroup's OOM kill counter
    memory_max_hits: int = 0    # times the cgroup's memory use reached its limit (failcnt / events max)
    pids_max_hits: int = 0      # forks the cgroup's pids.max refused
    vm_peak: int = 0            # largest VmPeak (bytes) among the job's processes, vs RLIMIT_AS
    processes: int = 0          # processes of the job (cgroup or sandbox uid)
    largest_file: int = 0       # bytes of the largest file in the kernel's writable folders (vs RLIMIT_FSIZE)

    def grew(self, before: Observation, name: str) -> bool:
        return getattr(self, name) > getattr(before, name)


def classify_error(before: Observation, after: Observation, limits: Limits, has_cgroup: bool) -> str | None:
    """A grader-level reason for an error a cell raised, from what the harness observed during the cell.

    ``out_of_memory``: the cgroup's OOM kill counter or memory-limit hits grew, or a process of the job
    reached 85% of RLIMIT_AS during the cell (a failed allocation under the address-space limit).
    ``policy``: the cgroup refused a fork (pids.max), or, without a cgroup, the job had half its
    process limit; or a file of the kernel reached RLIMIT_FSIZE. Else None (an ordinary failure).
    The exception's type and message are never looked at: a student can raise any of them.
    """
    if after.grew(before, "oom_kill") or after.grew(before, "memory_max_hits"):
        return "out_of_memory"
    if after.vm_peak > before.vm_peak and after.vm_peak >= 0.85 * limits.memory_mib * MIB:
        return "out_of_memory"
    if after.grew(before, "pids_max_hits"):
        return "policy"
    if not has_cgroup and after.processes >= max(2, limits.processes // 2):
        return "policy"
    if after.largest_file >= limits.file_mib * MIB > before.largest_file:
        return "policy"
    return None


def _signal_name(sig: int) -> str:
    return signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"


def death_reason(status: int | None, before: Observation | None = None, after: Observation | None = None,
                 limits: Limits | None = None, has_cgroup: bool = False, container: bool = False) -> tuple[str, str]:
    """Why the kernel process ended: its exit status (negative: killed by that signal; under bwrap,
    128 + the signal) and the cgroup's counters. Never the cell's output."""
    before, after = before or Observation(), after or Observation()
    if after.grew(before, "oom_kill"):
        return "out_of_memory", "the kernel was killed by the out-of-memory killer at the job's memory limit"
    if status is None:
        return "crash", "the kernel stopped answering"
    sig = -status if status < 0 else (status - 128 if container and 128 < status < 128 + 65 else None)
    if sig is not None:
        name = _signal_name(sig)
        if sig == signal.SIGXCPU:
            return "timeout", f"the kernel used up its CPU time limit ({name})"
        if sig == signal.SIGXFSZ:
            return "policy", f"the kernel wrote a file larger than the limit ({name})"
        if sig == signal.SIGKILL:
            if limits is not None and (after.grew(before, "memory_max_hits") or
                                       after.vm_peak >= 0.85 * limits.memory_mib * MIB):
                return "out_of_memory", f"the kernel was killed ({name}) at its memory limit"
            if not has_cgroup:
                return "out_of_memory", f"the kernel was killed ({name}), most likely for running out of memory"
            return "crash", f"the kernel was killed ({name})"
        return "crash", f"the kernel crashed ({name})"
    return "crash", f"the kernel process exited with status {status} (os._exit or a fatal error)"


def _vm_peak(pids: list[int]) -> int:
    peak = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmPeak:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
                        break
        except (OSError, ValueError):
            continue
    return peak


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _largest_file(folders: list[str], budget: int = 5000) -> int:
    """The largest regular file under ``folders`` (lstat only, no link followed, at most ``budget`` entries)."""
    import stat as stat_mod

    largest, stack, seen = 0, list(folders), 0
    while stack and seen < budget:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    seen += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat_mod.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                    elif stat_mod.S_ISREG(st.st_mode):
                        largest = max(largest, st.st_size)
        except OSError:
            continue
    return largest


def _output_size(out: NotebookNode) -> int:
    if out.get("output_type") == "stream":
        return len(out.get("text", "").encode("utf-8", "replace"))
    size = 0
    for value in out.get("data", {}).values():
        size += len(value) if isinstance(value, str) else len(json.dumps(value))
    if out.get("output_type") == "error":
        size += sum(len(x) for x in out.get("traceback", []))
    return size


class SandboxedExecute(Execute):
    """nbgrader's ``Execute`` with limits, kernel restarts and per-cell fault records (see module doc)."""

    # -- configuration from the worker's environment ------------------------------------------------
    def _configure(self) -> None:
        self.limits = Limits.from_env()
        self.kernel_name = sandbox.KERNEL_NAME
        self.timeout = max(1, math.ceil(self.limits.cell_timeout))
        self.interrupt_on_timeout = True
        self.raise_on_iopub_timeout = False
        self.iopub_timeout = max(1, math.ceil(self.limits.interrupt_grace))
        self.startup_timeout = max(1, math.ceil(self.limits.kernel_startup))
        self.shutdown_kernel = "immediate"
        self.allow_errors = True
        self.slot = int(os.environ.get(SLOT_VAR, "0"))
        uid_text = os.environ.get(UID_VAR, "")
        self.uid = int(uid_text) if uid_text.isdigit() and sandbox.is_root() else None
        root = os.environ.get(SANDBOX_ROOT_VAR)
        self.sandbox_root = Path(root) if root else sandbox.make_sandbox_root()
        self.records_dir = os.environ.get(RECORDS_VAR)
        self.submitted_dir = os.environ.get(SUBMITTED_VAR)
        # a kernel in its own network namespace cannot reach our TCP loopback: talk over Unix sockets
        self.ipc = os.environ.get(NETNS_VAR) == "1" and sandbox.is_root()
        self.protected = os.environ.get(NETNS_VAR) == "1"
        self.container = self.protected and sandbox.is_root() and container.probe() is None
        self.judged = os.environ.get(JUDGE_VAR, "1") != "0"
        self.session = judge_mod.Session(self._request, self.limits.cell_timeout)
        self.scores: dict[str, float] = {}
        self._bkc = None
        self._bkc_km = None
        self.loop_mode = os.environ.get(LOOP_VAR, "1") != "0"
        self._loop: str | None = None   # the msg_id of the serving loop running in the kernel, if any
        self.group: JobCgroup | None = None
        self.cgroup_note = "no cgroup (--unsafe)" if not self.protected else "no cgroup"

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if getattr(self, "ipc", False):
            km.transport = "ipc"
            km.ip = str(self.box / "ipc" / "kernel")
        return km

    # -- what the harness observes ------------------------------------------------------------------
    def _job_pids(self) -> list[int]:
        if self.group is not None:
            return self.group.pids()
        if self.uid is not None:
            return sandbox.uid_pids(self.uid)
        proc = getattr(getattr(getattr(self, "km", None), "provisioner", None), "process", None)
        return [proc.pid] if proc is not None else []

    def _writable_folders(self, pids: list[int]) -> list[str]:
        if self.container:  # the kernel's own view of its tmpfs mounts, through a process of the sandbox uid
            mine = [pid for pid in pids if self.uid is not None and _owner(pid) == self.uid]
            return [f"/proc/{pid}/root{d}" for pid in mine[:1]
                    for d in (container.WORKDIR, "/tmp", "/var/tmp", "/dev/shm")]
        return [str(self.box / "home")]

    def _observe(self, files: bool = False) -> Observation:
        pids = self._job_pids()
        obs = Observation(vm_peak=_vm_peak(pids), processes=len(pids))
        if self.group is not None:
            c = self.group.counters()
            obs.oom_kill, obs.memory_max_hits, obs.pids_max_hits = c["oom_kill"], c["memory_max_hits"], \
                c["pids_max_hits"]
        if files:
            obs.largest_file = _largest_file(self._writable_folders(pids))
        return obs

    def _isolation(self) -> dict:
        try:
            return json.loads((self.box / RUN_DIR / ISOLATION).read_text())
        except (OSError, ValueError):
            return {}

    # -- the notebook loop -----------------------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        self._configure()
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        notebook_id = (resources or {}).get("nbgrader", {}).get("notebook", "notebook")
        submitted = Path(self.submitted_dir) / f"{notebook_id}.ipynb" if self.submitted_dir else None
        self.box = sandbox.prepare_sandbox(self.sandbox_root, self.slot, submitted, self.uid)
        os.environ[DIR_VAR] = str(self.box)  # the launcher's working directory (kernel env = ours)
        os.environ[NOTEBOOK_VAR] = submitted.name if submitted is not None else ""
        os.environ.pop(CGROUP_VAR, None)
        if self.protected:
            self.group, self.cgroup_note = JobCgroup.create(
                f"job-{os.getpid()}-slot{self.slot}-{time.time_ns()}", self.limits.memory_mib * MIB,
                self.limits.processes)
            if self.group is not None:
                os.environ[CGROUP_VAR] = self.group.to_env()
        self._before = Observation()
        self.records: list[dict] = []
        self.restarts = 0
        self._cell_bytes, self._capped, self._timed_out = 0, False, False
        self._replayable: list[int] = []
        self._deadline = monotonic() + self.limits.notebook_timeout
        try:
            self.timing = {"kernel_start": 0.0, "student_cells": 0.0, "grade_cells": 0.0, "judge_requests": 0,
                           "cells": []}  # per cell: [grade id or index, kind, seconds, requests]
            started = monotonic()
            with self.setup_kernel(cwd=str(self.box)):
                assert self.kc
                info_msg = self.wait_for_reply(self.kc.kernel_info())
                self.timing["kernel_start"] = round(monotonic() - started, 3)
                if info_msg:
                    self.nb.metadata["language_info"] = info_msg["content"]["language_info"]
                for index, cell in enumerate(self.nb.cells):
                    meta = cell.metadata.get("nbgrader", {})
                    kind = "grade_cells" if meta.get("grade") and not meta.get("solution") else "student_cells"
                    t0, requests = monotonic(), self.session.judge.requests
                    self._run_cell(cell, resources, index)
                    seconds, asked = monotonic() - t0, self.session.judge.requests - requests
                    self.timing[kind] = round(self.timing[kind] + seconds, 3)
                    self.timing["judge_requests"] += asked
                    if cell.get("cell_type") == "code":
                        self.timing["cells"].append([meta.get("grade_id") or index, kind, round(seconds, 3), asked])
        finally:
            self.protections = self._protections()
            if self.group is not None:
                self.group.remove()
            if self.uid is not None:
                sandbox.kill_uid(self.uid)
            self._write_records(notebook_id)
        self.set_widgets_metadata()
        if self.judged:
            self.resources.setdefault("backproplab", {})["judged_scores"] = dict(self.scores)
        return self.nb, self.resources

    def _protections(self) -> dict:
        """Exactly which protections this job's kernels ran under (from the launcher's own record)."""
        iso = self._isolation()
        return {
            "container": iso.get("container") or ("none: --unsafe" if not self.protected else "unknown"),
            "uid": iso.get("uid"),
            "network": iso.get("network"),
            "hidden": iso.get("hidden"),
            "cgroup": self.cgroup_note,
            "rlimits": iso.get("rlimits", []),
            "summary": protection_summary(iso, self.group is not None, self.protected),
        }

    def _record(self, index: int, cell: NotebookNode, reason: str, message: str) -> None:
        reason = str(Reason(reason))  # one vocabulary (records.py): an unknown reason is a grader bug
        meta = cell.metadata.get("nbgrader", {})
        self.records.append({
            "index": index,
            "grade_id": meta.get("grade_id"),
            "grade": bool(meta.get("grade")),
            "solution": bool(meta.get("solution")),
            "reason": reason,
            "message": message,
        })

    def _write_records(self, notebook_id: str) -> None:
        if not self.records_dir:
            return
        folder = Path(self.records_dir)
        folder.mkdir(parents=True, exist_ok=True)
        data = {"notebook": notebook_id, "restarts": self.restarts, "cells": self.records,
                "timing": getattr(self, "timing", None),
                "protections": getattr(self, "protections", None)}
        tmp = folder / f".{notebook_id}.json.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, folder / f"{notebook_id}.json")

    def _run_cell(self, cell: NotebookNode, resources, index: int) -> None:
        if cell.cell_type != "code" or not cell.source.strip():
            return
        flagged = cell.metadata.get(MISSING_KEY, {}).get("policy")
        if flagged:
            cell.outputs = [error_output("PolicyViolation", flagged)]
            self._record(index, cell, "policy", flagged)
            return
        missing = cell.metadata.get(MISSING_KEY, {}).get("missing_cell")
        if missing:
            msg = (f"this grade cell was {missing} in the submission; it was restored from the assignment "
                   "and scores 0 (missing_cell)")
            cell.outputs = [error_output("MissingGradeCell", msg)]
            self._record(index, cell, "missing_cell", msg)
            return
        left = self._deadline - monotonic()
        if left <= 0:
            msg = (f"not run: the notebook used up its time limit of {self.limits.notebook_timeout:g} s "
                   "(timeout)")
            cell.outputs = [error_output("NotebookTimeout", msg)]
            self._record(index, cell, "timeout", msg)
            return
        meta = cell.metadata.get("nbgrader", {})
        if self.judged and meta.get("grade") and not meta.get("solution"):
            self._judge_cell(cell, index, left)
            return
        self._close_client()  # no serving loop may hold the kernel while nbclient runs a cell
        self.timeout = max(1, math.ceil(min(self.limits.cell_timeout, left)))
        self._cell_bytes = 0
        self._capped = False
        self._timed_out = False
        before = self._observe(files=True)
        try:
            self.preprocess_cell(cell, resources, index)
        except DeadKernelError:
            status = self._exit_status()
            reason, why = death_reason(status, before, self._observe(), self.limits, self.group is not None,
                                       self.container)
            msg = f"{why} while running this cell; a new kernel ran the rest of the notebook ({reason})"
            cell.outputs.append(error_output("KernelDied", msg))
            self._record(index, cell, reason, msg)
            self._restart()
            return
        if self._timed_out or self._capped:
            if self._capped:
                reason, ename = "output_cap", "OutputLimitExceeded"
                msg = (f"this cell printed more than {self.limits.output_bytes} bytes; the output was cut "
                       "and the cell stopped (output_cap)")
            else:
                reason, ename = "timeout", "Timeout"
                msg = f"this cell ran longer than {self.timeout} s and was stopped (timeout)"
            responsive = self._responsive(self.limits.interrupt_grace + 2)
            procs = len(sandbox.uid_pids(self.uid)) if self.uid is not None else 1
            if self.group is not None:
                procs = max(procs, len(self.group.pids()))
            after = self._observe()
            if not self._capped and (after.grew(before, "oom_kill") or after.grew(before, "memory_max_hits")):
                # observed: the job hit its memory limit during the cell (a process killed or stalled there)
                reason, ename = "out_of_memory", "OutOfMemory"
                msg = (f"this cell reached the job's memory limit ({self.limits.memory_mib} MiB) and stopped "
                       f"making progress; it was stopped after {self.timeout} s (out_of_memory)")
            if procs >= min(16, max(2, self.limits.processes // 2)):
                reason, ename = "policy", "ProcessLimit"
                msg = (f"this cell started {procs} processes (limit {self.limits.processes}) and did not "
                       "finish; they were all killed and the kernel restarted (policy)")
            elif not responsive:
                msg += "; it ignored the interrupt, so the kernel was killed and restarted"
            elif procs > 1:
                msg += "; the processes it started were killed and the kernel restarted"
            if not responsive or procs > 1:
                self._restart()
            keep = [o for o in cell.outputs if not (o.get("output_type") == "error" and o.get("ename") == "Timeout")]
            cell.outputs = keep + [error_output(ename, msg)]
            self._record(index, cell, reason, msg)
            return
        for out in cell.outputs:
            if out.get("output_type") == "error":
                reason = classify_error(before, self._observe(files=True), self.limits, self.group is not None)
                if reason:
                    what = {"out_of_memory": f"the cell ran out of memory (limit {self.limits.memory_mib} MiB)",
                            "policy": "the cell hit the grader's limit on processes or file size"}[reason]
                    self._record(index, cell, reason,
                                 f"{what}: {out.get('ename')}: {out.get('evalue', '')}".strip().rstrip(":"))
                    if reason == "policy":  # leftover forks may hold every process slot: start clean
                        self._restart()
                    return
                break
        else:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade"):
                self._replayable.append(index)
        meta = cell.metadata.get("nbgrader", {})
        if self.judged and not meta.get("grade") and not meta.get("solution"):
            # the instructor's cell: its imports and definitions exist in the judge too (trusted copies);
            # a request it sends (releasing stand-ins) opens a loop that the next kernel cell ends
            self.session.absorb(cell.source)

    # -- grade cells judged outside the kernel ----------------------------------------------------------
    def _judge_cell(self, cell: NotebookNode, index: int, left: float) -> None:
        """Run a grade cell in the judge (this process); the student's code answers its requests."""
        meta = cell.metadata.get("nbgrader", {})
        points = float(meta.get("points", 0) or 0)
        self.session.judge.cell_timeout = max(1.0, min(self.limits.cell_timeout, left))
        self._probe_outputs: list[NotebookNode] = []
        self._probe_bytes = 0
        self._probe_capped = False
        self._last_death = ("crash", "the kernel died")
        before = self._observe(files=True)
        verdict = self.session.run(cell.source)
        self._stop_loop()  # the kernel is free for the next cell; the printing that came last is collected
        if self._probe_capped and verdict.fault is None:
            verdict = dataclasses.replace(verdict, passed=False, fault="output_cap", ename="WorkerFault",
                                          evalue=self._cap_message())
        outputs = [NotebookNode(o) for o in verdict.outputs]
        if self._probe_outputs:
            outputs = self._probe_outputs + outputs
        score = 0.0
        if verdict.passed:
            score = points if verdict.score is None else max(0.0, min(points, verdict.score))
        else:
            traceback = [f"Cell In[{index}], line {verdict.line}"] if verdict.line else []
            outputs.append(NotebookNode(output_type="error", ename=verdict.ename, evalue=verdict.evalue,
                                        traceback=[*traceback, f"{verdict.ename}: {verdict.evalue}"]))
            if verdict.fault:
                reason = verdict.fault
                if reason == "crash":
                    reason, why = self._last_death
                    msg = f"{why} while this cell's checks were calling your code; a new kernel ran the rest ({reason})"
                else:
                    msg = verdict.evalue
                self._record(index, cell, reason, msg)
            else:
                reason = classify_error(before, self._observe(files=True), self.limits, self.group is not None)
                if reason:
                    what = {"out_of_memory": f"the cell ran out of memory (limit {self.limits.memory_mib} MiB)",
                            "policy": "the cell hit the grader's limit on processes or file size"}[reason]
                    self._record(index, cell, reason, f"{what}: {verdict.ename}: {verdict.evalue}")
                    if reason == "policy":
                        self._restart()
        cell.outputs = outputs
        cell.execution_count = None
        self.scores[meta.get("grade_id", "")] = score
        self._close_client()

    def _close_client(self) -> None:
        """The judge's client lives for one grade cell: between grade cells the kernel runs the student's
        cells with nbclient's own client only."""
        self._stop_loop()
        if self._bkc is not None:
            with _suppress():
                self._bkc.stop_channels()
        self._bkc, self._bkc_km = None, None

    def _client(self):
        """A blocking client of the current kernel, for the judge's requests (its own sockets)."""
        if self._bkc is None or self._bkc_km is not self.km:
            if self._bkc is not None:
                with _suppress():
                    self._bkc.stop_channels()
            client = _judge_client()
            client.load_connection_info(self.km.get_connection_info(session=True))
            client.session.key = self.km.session.key
            client.start_channels()
            client.wait_connected(max(1.0, self.limits.interrupt_grace))
            self._bkc, self._bkc_km = client, self.km
        return self._bkc

    def _request(self, text: str, on_callback, timeout: float | None) -> str:
        """The judge's channel: one request to the worker, answered by the kernel's serving loop
        (``backproplab.remote.serve_loop``, one execute request per grade cell): the request goes as an
        input reply, the answer comes as the prompt of the loop's next ``input()``; callbacks are input
        prompts too. The student's printing is collected (capped); a request past its time limit
        interrupts the kernel; a dead kernel is restarted."""
        if not self.loop_mode:
            return self._request_once(text, on_callback, timeout)
        client = self._client()
        pending: str | None = text
        if self._loop is None:  # the loop starts with this cell's first request and says when it is ready
            self._loop = client.execute(_LOOP_CODE, silent=True, store_history=False, allow_stdin=True,
                                        stop_on_error=False)
        else:
            client.input(text)
            pending = None
        loop_id = self._loop
        limit = timeout if timeout is not None else self.limits.cell_timeout
        limit = min(limit, max(0.0, self._deadline - monotonic()))
        deadline = monotonic() + limit
        interrupted = ended = False
        answer: str | None = None
        while answer is None and not ended:
            deadline, interrupted, wait = self._time_left(deadline, interrupted, limit)
            if wait is None:
                continue
            for kind, msg in self._loop_messages(client, loop_id, min(wait, 0.5)):
                if kind == "none":
                    if not run_sync(self.km.is_alive)():
                        self._kernel_died_or_stuck()
                        raise judge_mod.WorkerFault("crash", "the kernel died")
                elif kind == "stdin":
                    prompt = str(msg.get("content", {}).get("prompt", ""))
                    if prompt == READY_PROMPT and pending is not None:
                        client.input(pending)
                        pending = None
                    elif prompt.startswith(ANSWER_PREFIX):
                        answer = prompt[len(ANSWER_PREFIX):]
                    elif prompt.startswith(CALLBACK_PREFIX):
                        client.input(on_callback(prompt[len(CALLBACK_PREFIX):]))
                    else:  # the student's own input(): there is no one to type
                        client.input("")
                elif kind == "shell" and msg.get("msg_type") == "execute_reply":
                    ended = True  # the loop stopped (an interrupt between requests): the next request starts one
        if ended:
            self._loop = None
        for _ in self._loop_messages(client, loop_id, 0.0, iopub_only=True):
            pass  # what the student printed comes on iopub, flushed before the answer
        if self._probe_capped:
            self._probe_capped = False
            raise judge_mod.WorkerFault("output_cap", self._cap_message())
        if interrupted:
            raise TimeoutError(f"{limit:g} s")
        if answer is None:
            return json.dumps({"error": {"type": "KeyboardInterrupt", "message": "the request did not complete"}})
        return answer

    def _time_left(self, deadline: float, interrupted: bool, limit: float) -> tuple[float, bool, float | None]:
        """``(deadline, interrupted, seconds to wait)`` for a request; past its deadline the kernel is
        interrupted once (``None``: look again with the short deadline that gives it), then killed and
        restarted."""
        wait = deadline - monotonic()
        if wait > 0:
            return deadline, interrupted, wait
        if not interrupted:
            self._interrupt()
            return monotonic() + self.limits.interrupt_grace + 1, True, None
        self._kernel_died_or_stuck()
        raise TimeoutError(f"{limit:g} s; it ignored the interrupt, so the kernel was killed and restarted")

    def _loop_messages(self, client, loop_id: str, wait: float, iopub_only: bool = False):
        """The loop's messages that arrive within ``wait`` seconds, as ``(channel, msg)``; iopub output
        goes to the probe collector on the way. ``("none", {})`` when nothing came."""
        import zmq

        channels = {"iopub": client.iopub_channel}
        if not iopub_only:
            channels.update(stdin=client.stdin_channel, shell=client.shell_channel)
        poller = zmq.Poller()
        for channel in channels.values():
            poller.register(channel.socket, zmq.POLLIN)
        events = dict(poller.poll(timeout=wait * 1000))
        if not events:
            yield "none", {}
            return
        for kind, channel in channels.items():
            if channel.socket not in events:
                continue
            while True:
                try:
                    msg = channel.get_msg(timeout=0)
                except Empty:
                    break
                if msg.get("parent_header", {}).get("msg_id") != loop_id:
                    continue
                if kind == "iopub":
                    if msg.get("msg_type") == "status":
                        if msg.get("content", {}).get("execution_state") == "idle":
                            yield "idle", msg
                    else:
                        self._probe_output(msg)
                else:
                    yield kind, msg

    def _stop_loop(self) -> None:
        """End the serving loop (at the end of a grade cell): the kernel is then idle for the next cell."""
        if self._loop is None or self._bkc is None:
            self._loop = None
            return
        loop_id, client = self._loop, self._bkc
        self._loop = None
        with _suppress():
            client.input(STOP)
        deadline = monotonic() + self.limits.interrupt_grace + 1
        interrupted = False
        while True:
            if (left := deadline - monotonic()) <= 0:
                if interrupted:
                    self._kernel_died_or_stuck()
                    return
                interrupted = True
                self._interrupt()
                deadline = monotonic() + self.limits.interrupt_grace + 1
                continue
            kinds = [(kind, msg) for kind, msg in self._loop_messages(client, loop_id, min(left, 0.5))]
            if any(kind == "idle" for kind, _ in kinds):
                return
            for kind, _ in kinds:
                if kind == "stdin":
                    client.input(STOP)
                elif kind == "none" and not run_sync(self.km.is_alive)():
                    self._kernel_died_or_stuck()
                    return

    def _cap_message(self) -> str:
        return (f"your code printed more than {self.limits.output_bytes} bytes while the checks called it; "
                "the output was cut and the cell stopped (output_cap)")

    def _request_once(self, text: str, on_callback, timeout: float | None) -> str:
        """The judge's channel without the loop (``BACKPROPLAB_JUDGE_LOOP=0``): one request to the worker (``backproplab.remote.handle`` in the kernel),
        answered in the execute reply's user expression; callbacks over the stdin channel; the student's
        printing collected (capped); a timeout interrupts the kernel; a dead kernel is restarted."""
        client = self._client()
        # the request runs as code (input(), hence callbacks, is forwarded to us only while code runs);
        # silent and not stored: the kernel's history never holds it
        code = f"__import__('backproplab.remote', fromlist=['serve']).serve({text!r})"
        expr = "__import__('backproplab.remote', fromlist=['take']).take()"
        msg_id = client.execute(code, silent=True, store_history=False, user_expressions={"r": expr},
                                allow_stdin=True, stop_on_error=False)
        limit = timeout if timeout is not None else self.limits.cell_timeout
        limit = min(limit, max(0.0, self._deadline - monotonic()))
        deadline = monotonic() + limit
        interrupted = idle = False
        reply, idle_deadline = None, 0.0
        while reply is None or not (idle or monotonic() > idle_deadline):
            deadline, interrupted, wait = self._time_left(deadline, interrupted, limit)
            if wait is None:
                continue
            for kind, msg in self._loop_messages(client, msg_id, min(wait, 0.5)):
                if kind == "none" and reply is None and not run_sync(self.km.is_alive)():
                    self._kernel_died_or_stuck()
                    raise judge_mod.WorkerFault("crash", "the kernel died")
                if kind == "idle":
                    idle = True
                elif kind == "stdin" and msg.get("msg_type") == "input_request":
                    prompt = str(msg.get("content", {}).get("prompt", ""))
                    client.input(on_callback(prompt[len(CALLBACK_PREFIX):])
                                 if prompt.startswith(CALLBACK_PREFIX) else "")
                elif kind == "shell" and msg.get("msg_type") == "execute_reply":
                    reply = msg
                    idle_deadline = monotonic() + 2.0  # the kernel's last output comes before its idle
        if self._probe_capped:
            self._probe_capped = False  # said once; more printing in this cell is cut again
            raise judge_mod.WorkerFault("output_cap", self._cap_message())
        if interrupted:
            raise TimeoutError(f"{limit:g} s")
        return _user_expression(reply)

    def _probe_output(self, msg: dict) -> None:
        kind = msg.get("msg_type")
        if kind not in ("stream", "display_data", "error"):
            return
        content = msg.get("content", {})
        if kind == "stream":
            out = NotebookNode(output_type="stream", name="stdout",
                               text=("[stderr] " if content.get("name") == "stderr" else "") + str(content.get("text", "")))
        elif kind == "error":
            return
        else:
            out = NotebookNode(output_type="display_data", metadata={},
                               data={"text/plain": str(content.get("data", {}).get("text/plain", ""))[:2000]})
        size = _output_size(out)
        if self._probe_bytes + size > self.limits.output_bytes:
            if not self._probe_capped:
                self._probe_capped = True
                self._interrupt()
            return
        self._probe_bytes += size
        if self._probe_outputs and out.get("output_type") == "stream" and \
                self._probe_outputs[-1].get("output_type") == "stream":
            self._probe_outputs[-1]["text"] += out["text"]
        else:
            self._probe_outputs.append(out)

    def _interrupt(self) -> None:
        with _suppress():
            run_sync(self.km.interrupt_kernel)()

    def _kernel_died_or_stuck(self) -> None:
        status = self._exit_status() if not run_sync(self.km.is_alive)() else None
        self._last_death = death_reason(status, None, self._observe(), self.limits, self.group is not None,
                                        self.container) if status is not None else ("crash", "the kernel stopped answering")
        self._loop = None
        self._restart()
        self._bkc_km = None

    # -- timeouts, output cap --------------------------------------------------------------------------
    async def _async_handle_timeout(self, timeout, cell=None):
        self._timed_out = True
        self.log.warning("cell timed out after %s s: interrupting the kernel", timeout)
        try:
            await ensure_async(self.km.interrupt_kernel())
        except Exception as exc:  # noqa: BLE001 - a kernel that cannot be interrupted is killed later
            self.log.warning("interrupt failed: %s", exc)
        return {"content": {"status": "error", "ename": "Timeout",
                            "evalue": f"the cell ran longer than {timeout} s (timeout)",
                            "traceback": [f"Timeout: the cell ran longer than {timeout} s (timeout)"]}}

    def output(self, outs, msg, display_id, cell_index):
        out = super().output(outs, msg, display_id, cell_index)
        if out is None:
            return out
        cap = self.limits.output_bytes
        size = _output_size(out)
        if self._capped:
            if outs and outs[-1] is out:
                outs.pop()
            return None
        if self._cell_bytes + size > cap:
            room = max(0, cap - self._cell_bytes)
            if out.get("output_type") == "stream" and room > 0:
                out["text"] = out["text"].encode("utf-8", "replace")[:room].decode("utf-8", "ignore")
                out["text"] += "\n... output truncated by the grader ...\n"
            elif outs and outs[-1] is out:
                outs.pop()
            self._capped = True
            self._cell_bytes = cap
            try:
                self._cap_task = asyncio.ensure_future(ensure_async(self.km.interrupt_kernel()))
            except Exception:  # noqa: BLE001 - the cell's timeout stops it anyway
                pass
            return None
        self._cell_bytes += size
        return out

    # -- kernel life -----------------------------------------------------------------------------------
    def _exit_status(self) -> int | None:
        proc = getattr(getattr(self.km, "provisioner", None), "process", None)
        if proc is None:
            return None
        for _ in range(50):
            status = proc.poll()
            if status is not None:
                return status
            time.sleep(0.05)
        return None

    async def _async_responsive(self, wait: float) -> bool:
        try:
            if not await ensure_async(self.km.is_alive()):
                return False
            msg_id = self.kc.kernel_info()
            deadline = monotonic() + wait
            while (left := deadline - monotonic()) > 0:
                try:
                    msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
                except Empty:
                    return False
                if msg.get("parent_header", {}).get("msg_id") == msg_id:
                    return True
        except Exception:  # noqa: BLE001
            return False
        return False

    _responsive = run_sync(_async_responsive)

    async def _async_restart(self) -> None:
        self.restarts += 1
        self._loop = None
        if self.group is not None:
            self.group.kill()
        if self.uid is not None:
            sandbox.kill_uid(self.uid)
        await self._async_cleanup_kernel()
        self.km = self.create_kernel_manager()
        await self.async_start_new_kernel(cwd=str(self.box))
        await self.async_start_new_kernel_client()
        for index in self._replayable:
            if not await self._async_replay(self.nb.cells[index].source):
                break

    _restart = run_sync(_async_restart)

    async def _async_replay(self, source: str) -> bool:
        """Run a setup or solution cell again in the new kernel, output discarded."""
        msg_id = self.kc.execute(source, store_history=False, stop_on_error=False)
        deadline = monotonic() + max(1.0, min(self.limits.cell_timeout, self._deadline - monotonic()))
        while (left := deadline - monotonic()) > 0:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                break
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return True
        return False


def _judge_client():
    """A ``BlockingKernelClient`` whose stdin and iopub sockets are known to be connected before use.

    zmq connects in the background, and the kernel's stdin socket (a ROUTER) drops a message for a peer
    whose connection is not complete: the serving loop's first prompt, sent a moment after the execute
    request, was lost that way about once in a few hundred cells. The client watches its sockets'
    handshakes and :meth:`wait_connected` waits for them."""
    import zmq
    from jupyter_client.blocking import BlockingKernelClient
    from jupyter_client.connect import channel_socket_types

    class JudgeClient(BlockingKernelClient):
        def _create_connected_socket(self, channel, identity=None):
            if channel not in ("stdin", "iopub") or self.curve_publickey is not None:
                return super()._create_connected_socket(channel, identity)
            sock = self.context.socket(channel_socket_types[channel])
            sock.linger = 1000
            if identity:
                sock.identity = identity
            monitors = self.__dict__.setdefault("_handshakes", [])
            monitors.append((sock, sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)))
            sock.connect(self._make_url(channel))
            return sock

        def wait_connected(self, timeout: float) -> bool:
            """Wait (at most ``timeout`` s) until every watched socket has completed its handshake."""
            from zmq.utils.monitor import recv_monitor_message

            deadline = monotonic() + timeout
            ok = True
            for sock, monitor in self.__dict__.pop("_handshakes", []):
                left = max(0.0, deadline - monotonic())
                if monitor.poll(left * 1000):
                    recv_monitor_message(monitor)
                else:
                    ok = False
                with _suppress():
                    sock.disable_monitor()
                monitor.close(linger=0)
            return ok

    return JudgeClient()


class _suppress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], Exception)


def _user_expression(msg: dict) -> str:
    """The worker's answer: the text of the user expression ``r`` of an execute reply."""
    import ast

    content = msg.get("content", {})
    value = content.get("user_expressions", {}).get("r", {})
    if value.get("status") != "ok":
        return json.dumps({"error": {"type": str(value.get("ename", "Error"))[:100],
                                     "message": str(value.get("evalue", ""))[:2000]}})
    text = value.get("data", {}).get("text/plain", "")
    if not isinstance(text, str) or len(text) > 80 * 1024 * 1024 or text[:1] not in ("'", '"'):
        return json.dumps({"error": {"type": "WireError", "message": "no readable answer"}})
    try:
        answer = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return json.dumps({"error": {"type": "WireError", "message": "no readable answer"}})
    if not isinstance(answer, str):
        return json.dumps({"error": {"type": "WireError", "message": "no readable answer"}})
    return answer


def protection_summary(iso: dict, cgroup: bool, protected: bool) -> str:
    """One line for the CSV: the protections that were active, e.g.
    ``container(bwrap) uid netns pidns tmpfs cgroup rlimits``; ``unsafe`` or ``reduced: ...`` otherwise."""
    if not protected:
        return "unsafe (--unsafe: no uid, no namespaces, no container)"
    parts = []
    if iso.get("container") == "bwrap":
        parts += ["container(bwrap)", "pidns", "mountns", "tmpfs"]
    if iso.get("uid") is not None:
        parts.append("uid")
    if iso.get("network") == "new namespace":
        parts.append("netns")
    if isinstance(iso.get("hidden"), list) and iso.get("hidden"):
        parts.append("hidden-folders")
    if cgroup:
        parts.append("cgroup")
    if iso.get("rlimits"):
        parts.append("rlimits")
    text = " ".join(parts) or "none"
    if iso.get("container") != "bwrap" or not cgroup:
        missing = [w for w, ok in (("container", iso.get("container") == "bwrap"), ("uid", iso.get("uid") is not None),
                                   ("cgroup", cgroup)) if not ok]
        text = f"reduced ({text}; missing: {', '.join(missing)})"
    return text


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[\d+\], line (\d+)")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])", re.I)
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def hidden_lines(source: str) -> set[int]:
    """Line numbers (from 1) of a grade cell's hidden-tests regions, markers included."""
    lines, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if HIDDEN_BEGIN in line:
            inside = True
        if inside:
            lines.add(number)
        if HIDDEN_END in line:
            inside = False
    return lines


def redact(message: str) -> str:
    """The first line of a failure message with the numbers after each 'expected' replaced by '…'."""
    first = next((ln.strip() for ln in _ANSI.sub("", message).splitlines() if ln.strip()), "")
    parts = re.split(r"(?i)(?=expected)", first)
    return parts[0] + "".join(_NUMBER.sub("…", p) for p in parts[1:])


def failing_line(traceback: list[str]) -> int | None:
    """The line of the grade cell itself (the outermost frame) that raised, from an IPython traceback."""
    m = _CELL_LINE.search(_ANSI.sub("", "\n".join(traceback or [])))
    return int(m.group(1)) if m else None


class FeedbackScrub(NbGraderPreprocessor):
    """Feedback shows what failed, never the hidden tests or the values they expect.

    Runs in ``GenerateFeedback`` before ``ClearHiddenTests`` (the hidden regions are still in the
    source, so the failing line can be placed). In every grade cell: the traceback becomes its
    message (IPython quotes the source lines around the failing one); a failure raised on a line of
    a hidden-tests region (or on a line that cannot be placed, when the cell has hidden tests) is
    shown as "a hidden check failed: <first line, numbers after 'expected' replaced by …>"; and the
    printed output of a cell with hidden tests is removed (a student's function can print the
    hidden inputs it is called with). The instructor's grades_detailed.csv keeps full messages.
    """

    def preprocess(self, nb, resources):
        # Everything a student's code displayed becomes inert (no script, no active markup) before
        # nbconvert renders the page; the notebook's widget state goes too.
        neutralise.scrub_notebook(nb)
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            # nbgrader markers a student typed (``# BEGIN HIDDEN TESTS`` in a solution cell) would make
            # ClearHiddenTests raise (no feedback, a grader error on every rerun): made inert here.
            cell.source = neutralise.inert_markers(cell.get("source", ""))
        if cell.cell_type == "code" and meta.get("grade"):
            hidden = hidden_lines(cell.source)
            kept = []
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    ename, evalue = out.get("ename", "Error"), out.get("evalue", "")
                    line = failing_line(out.get("traceback", []))
                    if hidden and (line is None or line in hidden) and ename not in (
                            "PolicyViolation", "MissingGradeCell", "Timeout", "NotebookTimeout", "KernelDied",
                            "OutputLimitExceeded", "ProcessLimit"):
                        evalue = "a hidden check failed: " + redact(evalue)
                        out["evalue"] = evalue
                    out["traceback"] = [f"{ename}: {evalue}"]
                    kept.append(out)
                elif hidden:
                    if not any(o.get("output_type") == "stream" and "hidden checks" in o.get("text", "")
                               for o in kept):
                        kept.append(NotebookNode(output_type="stream", name="stdout",
                                                 text="(output of this test cell not shown: it runs hidden checks)\n"))
                else:
                    kept.append(out)
            cell.outputs = kept
        return cell, resources
