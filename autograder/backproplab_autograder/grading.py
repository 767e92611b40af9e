"""Grade a class: course folder, one job per (student, assignment) in parallel workers, results on disk.

Layout of the output folder ``DIR``::

    DIR/course/        0700: nbgrader course (config, source, release, submitted, autograded,
                       feedback, gradebook.db); the sandbox uids cannot read it
    DIR/work/          intake copies, per-job nbgrader logs and execute records
    DIR/results/<student>/<assignment>.json   one finished job, written atomically
    DIR/feedback/<student>/<assignment>/<notebook>.html
    DIR/grades.csv, DIR/grades_detailed.csv, DIR/nbgrader_grades.csv, DIR/report.md, DIR/report.png,
    DIR/intake_report.md

A job is finished when its result file exists and carries the hash of its inputs (the submitted
bytes, the source notebook, the limits, this grader's version) and the course's token. A rerun
skips finished jobs and redoes the others with ``--force``: a job killed half-way left no result,
so it is graded again from scratch, and nbgrader overwrites whatever it had written for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.utils import is_grade

from . import feedback_page, forkserver, policy, precheck, results, sandbox
from . import intake as intake_mod
from .config import render_config
from .course import ASSIGNMENTS, SOLUTIONS, tool_env
from .execute import RECORDS_VAR, SANDBOX_ROOT_VAR, SLOT_VAR, SUBMITTED_VAR
from .launcher import HIDE_VAR, NETNS_VAR, PYTHON_VAR, UID_VAR
from .limits import ENV_VAR as LIMITS_VAR
from .limits import Limits

GRADER_VERSION = "3"   # 3: grade cells judged outside the kernel
COURSE_ID = "backprop-lab"
LOCK_MARKERS = ("database is locked", "could not serialize access", "deadlock detected")

AUTOGRADE_CONFIG = """\
# Autograde: nbgrader's own pipeline, with its Execute replaced by the sandboxed one (the student's
# cells in the sandboxed kernel, the grade cells in the judge) and the scores written by the judge.
c.Autograde.autograde_preprocessors = [
    "backproplab_autograder.execute.SandboxedExecute",
    "backproplab_autograder.scoring.ScoreOnlyWhatTheCellComputes",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "backproplab_autograder.scoring.SaveJudgedGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.LimitOutput.max_lines = 1000
c.LimitOutput.max_traceback = 100

# Feedback: nbgrader's, plus grade-cell tracebacks cut to their message (failures in hidden tests redacted)
# and the hidden tests removed.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "backproplab_autograder.execute.FeedbackScrub",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.GenerateFeedback.exporter_class = "backproplab_autograder.feedback_page.FeedbackHTMLExporter"
"""


@dataclass
class Course:
    root: Path            # DIR/course
    db_url: str
    assignments: list[str]
    token: str
    source_hash: dict[str, str]
    release: dict[str, nbformat.NotebookNode]
    jupyter_path: Path
    notebooks: dict[str, str]     # assignment -> notebook file name
    protected: dict[str, set[str]] = field(default_factory=dict)  # builtins the grade cells read
    # Course mode (coursemode.py) grades inside an instructor's nbgrader course: its course id, the
    # folder holding the nbgrader_config.py the job loads, and where the rebuilt notebooks are staged.
    course_id: str = "backprop-lab"
    config_dir: Path | None = None     # default: root
    staging: Path | None = None        # rebuilt submissions (default: root/submitted)

    def folder(self, kind: str) -> Path:
        """Where nbgrader reads (``submitted``) or writes (``autograded``, ``feedback``) for this course."""
        if kind == "submitted" and self.staging is not None:
            return self.staging
        return self.root / kind


@dataclass
class Job:
    student: str
    assignment: str
    notebook: Path        # normalised submission (DIR/work/submitted/...)
    timestamp: Path | None = None   # nbgrader's timestamp.txt of the submission (course mode)

    @property
    def key(self) -> str:
        return f"{self.student}/{self.assignment}"


@dataclass
class Settings:
    out: Path
    limits: Limits = field(default_factory=Limits)
    jobs: int = os.cpu_count() or 1
    db_url: str | None = None
    source_dir: Path = SOLUTIONS
    progress: bool = True
    job_timeout: float | None = None   # wall limit for one job's nbgrader call (default from limits)
    sandbox_root: Path | None = None
    sandbox_python: str = ""           # json for the launcher when the kernel needs a mirrored interpreter
    slot_uids: list = field(default_factory=list)  # uid leased for each worker slot during a run
    scan: bool = True                  # static policy + tampering scan of the solution cells
    unsafe: bool = False               # MEASUREMENT ONLY: no reconstruction, no scan, no uid drop, no netns
    hide: list[Path] = field(default_factory=list)  # folders the kernel must not see (mount namespace)
    feedback: bool = True              # render feedback pages (``--no-feedback``: scores only)
    feedback_later: bool = False       # jobs score only; :func:`render_feedback` makes the pages at the end
    dask: str | None = None            # ``--dask ADDRESS``: the jobs run on a Dask cluster (cluster.py)
    policy_zero: bool = False          # ``--policy zero``: a scan finding zeroes the exercise (default: advice)

    def mode(self) -> str:
        base = "unsafe" if self.unsafe else ("safe" if self.scan else "safe-noscan")
        return base + ("+policy-zero" if self.policy_zero and not self.unsafe else "")

    def hash_mode(self) -> str:
        """What a finished job's hash depends on besides its inputs: a scores-only pass is redone
        when feedback is wanted."""
        return self.mode() + ("" if self.feedback else "+nofeedback")


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def run_tool(args: list[str], cwd: Path, env: dict, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a command in its own process group; on timeout the whole group is killed."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        err = (err or "") + f"\n[backproplab-grade] killed after {timeout:.0f} s"
        return subprocess.CompletedProcess(args, -9, out, err)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def nbgrader_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).parent / "nbgrader"
    return [str(exe) if exe.exists() else "nbgrader", *args]


def notebook_names(source_dir: Path, assignments: list[str]) -> dict[str, str]:
    """Assignment -> notebook file name: the contract's name, else the one notebook of the source folder."""
    names = {}
    for aid in assignments:
        if aid in ASSIGNMENTS and (Path(source_dir) / aid / ASSIGNMENTS[aid]).exists():
            names[aid] = ASSIGNMENTS[aid]
        else:
            found = sorted(p.name for p in (Path(source_dir) / aid).glob("*.ipynb"))
            if len(found) != 1:
                raise ValueError(f"{source_dir}/{aid}: expected one source notebook, found {found}")
            names[aid] = found[0]
    return names


def setup_course(settings: Settings, assignments: list[str]) -> Course:
    """Create (or reuse) DIR/course with the source, the release and the gradebook."""
    root = settings.out / "course"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    for private in ("work", "results", "feedback"):  # other students' files: out of the sandbox uid's reach
        (settings.out / private).mkdir(exist_ok=True)
        os.chmod(settings.out / private, 0o700)
    db_url = settings.db_url or f"sqlite:///{root / 'gradebook.db'}"
    token_file = root / "course-token"
    if not token_file.exists():
        tmp = root / ".course-token.tmp"
        tmp.write_text(secrets.token_hex(8))
        os.replace(tmp, token_file)
    (root / "nbgrader_config.py").write_text(render_config(root, course_id=COURSE_ID, db_url=db_url,
                                                            extra=AUTOGRADE_CONFIG))
    jupyter_path = root / "jupyter"
    sandbox.write_kernelspec(jupyter_path / "kernels")
    env = grading_env(jupyter_path)
    source_hash, release = {}, {}
    names = notebook_names(settings.source_dir, assignments)
    from .cluster import create_gradebook, gradebook_lock  # a shared PostgreSQL gradebook: created once

    create_gradebook(db_url, COURSE_ID)
    stale, digests = [], {}
    for aid in assignments:
        src = Path(settings.source_dir) / aid
        digests[aid] = _sha(*[p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()])
        stamp = root / "source-hashes" / aid
        if not (stamp.exists() and stamp.read_text() == digests[aid]
                and (root / "release" / aid / names[aid]).exists()):
            stale.append(aid)
            stamp.unlink(missing_ok=True)
            dest = root / "source" / aid
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc"))
    if stale:  # every changed assignment in one process (generate.py): nbgrader is imported once
        with gradebook_lock(db_url):  # one grader at a time writes the assignments' rows
            proc = _with_lock_retry(lambda: run_tool(
                [sys.executable, "-m", "backproplab_autograder.generate", *stale], root, env,
                timeout=300 * len(stale)))
        ready = {line.split(" ", 1)[1] for line in (proc.stdout or "").splitlines() if line.startswith("generated ")}
        for aid in stale:
            if aid in ready:
                (root / "source-hashes").mkdir(exist_ok=True)
                (root / "source-hashes" / aid).write_text(digests[aid])
        if proc.returncode != 0:
            raise RuntimeError(f"nbgrader could not set up {', '.join(a for a in stale if a not in ready)}:\n"
                               f"{proc.stderr}")
    for aid in assignments:
        source_hash[aid] = digests[aid]
        release[aid] = nbformat.read(str(root / "release" / aid / names[aid]), as_version=4)
    protected = {}
    for aid in assignments:
        src_nb = nbformat.read(str(root / "source" / aid / names[aid]), as_version=4)
        protected[aid] = policy.protected_names([c.source for c in src_nb.cells if c.get("cell_type") == "code"
                                                 and is_grade(c)])
    return Course(root, db_url, assignments, token_file.read_text().strip(), source_hash, release, jupyter_path,
                  names, protected)


def grading_env(jupyter_path: Path) -> dict[str, str]:
    env = tool_env()
    env["JUPYTER_PATH"] = str(jupyter_path) + os.pathsep + env.get("JUPYTER_PATH", "")
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _with_lock_retry(call, tries: int = 6):
    proc = None
    for attempt in range(tries):
        proc = call()
        text = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode == 0 or not any(m in text for m in LOCK_MARKERS):
            return proc
        time.sleep(0.5 * (attempt + 1))
    return proc


def job_hash(job: Job, course: Course, limits: Limits, mode: str = "safe") -> str:
    stamp = b""
    if job.timestamp is not None:
        try:
            stamp = job.timestamp.read_bytes()[:4096] if stat.S_ISREG(os.lstat(job.timestamp).st_mode) else b""
        except OSError:
            stamp = b""
    return _sha(job.notebook.read_bytes(), course.source_hash[job.assignment].encode(),
                limits.to_json().encode(), GRADER_VERSION.encode(), mode.encode(), stamp)


def result_path(out: Path, job: Job) -> Path:
    return out / "results" / job.student / f"{job.assignment}.json"


def load_finished(out: Path, job: Job, course: Course, digest: str) -> dict | None:
    path = result_path(out, job)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    # a result whose scores landed but whose feedback page was not made yet (a run stopped in its feedback
    # phase) is finished too: the feedback phase of this run makes the page
    scored = data.get("feedback") == "pending" and data.get("feedback_hash") == digest
    if (data.get("hash") != digest and not scored) or data.get("course_token") != course.token:
        return None
    if any(c["reason"] == "grader_error" for c in data.get("cells", [])) or data.get("grader_error"):
        return None  # never treat a grader failure as final: try again
    return data


def late_penalty(course: Course, job: Job) -> float:
    """The late-submission penalty nbgrader's plugin recorded for this submission (0 when on time)."""
    from nbgrader.api import Gradebook, MissingEntry

    with warnings.catch_warnings(), Gradebook(course.db_url, course.course_id) as gb:
        warnings.simplefilter("ignore")
        try:
            sub = gb.find_submission(job.assignment, job.student)
        except MissingEntry:
            return 0.0
        return float(sum(nb.late_submission_penalty or 0.0 for nb in sub.notebooks))


def _scores(course: Course, job: Job, notebook_id: str) -> dict[str, tuple[float | None, float]]:
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(course.db_url, course.course_id) as gb:
        nb = gb.find_submission_notebook(notebook_id, job.assignment, job.student)
        for grade in nb.grades:
            if grade.manual_score is not None:  # a person's score wins, whatever the flag says
                scores[grade.name] = (float(grade.manual_score), float(grade.max_score), "manual")
            elif grade.needs_manual_grade:
                scores[grade.name] = (None, float(grade.max_score), "needs_manual")
            else:
                scores[grade.name] = (grade.score, float(grade.max_score), "auto")
    return scores


def _job_timing(stderr: str | None) -> dict:
    """The ``BACKPROPLAB_TIMING`` line nbjob prints: seconds in nbgrader's autograde and feedback."""
    for line in reversed((stderr or "").splitlines()):
        if line.startswith("BACKPROPLAB_TIMING "):
            try:
                data = json.loads(line.split(" ", 1)[1])
            except ValueError:
                return {}
            return {k: v for k, v in data.items() if isinstance(v, (int, float))}
    return {}


def grade_one(job: Job, course: Course, settings: Settings, slot: int) -> dict:
    """Pre-check, autograde and feedback for one (student, assignment); returns the result dict."""
    out, limits = settings.out, settings.limits
    nb_name = course.notebooks[job.assignment]
    notebook_id = Path(nb_name).stem
    work = out / "work" / "jobs" / job.student / job.assignment
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    records_dir = work / "records"
    submitted = course.folder("submitted") / job.student / job.assignment
    if submitted.exists():
        shutil.rmtree(submitted)
    submitted.mkdir(parents=True)
    started = time.perf_counter()
    result = {"student_id": job.student, "assignment": job.assignment, "notebook": notebook_id,
              "course_token": course.token, "notes": [], "grader_error": None}

    check = precheck.check(job.notebook, course.release[job.assignment], submitted / nb_name,
                           known_kernels={"python3", sandbox.KERNEL_NAME}, reconstruct=not settings.unsafe,
                           scan=settings.scan and not settings.unsafe, assignment=job.assignment,
                           protected=course.protected.get(job.assignment, set()),
                           policy_zero=settings.policy_zero)
    result["notes"] += check.notes
    if job.timestamp is not None:
        result["notes"] += stage_timestamp(job.timestamp, submitted)
    result["mode"] = settings.mode()
    result["policy"] = [{"exercise": f.exercise, "rule": f.rule, "line": f.line, "message": f.message(),
                         "zeroed": settings.policy_zero} for f in check.findings]
    env = grading_env(course.jupyter_path)
    uid = None if settings.unsafe else (settings.slot_uids[slot] if slot < len(settings.slot_uids)
                                        else sandbox.slot_uid(slot))
    env.update({
        LIMITS_VAR: limits.to_json(),
        SLOT_VAR: str(slot),
        RECORDS_VAR: str(records_dir),
        SUBMITTED_VAR: str(submitted),
        SANDBOX_ROOT_VAR: str(settings.sandbox_root),
    })
    if uid is not None:
        env[UID_VAR] = str(uid)
    if not settings.unsafe:
        env[NETNS_VAR] = "1"
        env[HIDE_VAR] = json.dumps(sorted({str(Path(p).resolve()) for p in
                                           [out, settings.source_dir, SOLUTIONS, *settings.hide]}))
    if settings.sandbox_python:
        env[PYTHON_VAR] = settings.sandbox_python
    timeout = settings.job_timeout or (limits.notebook_timeout + 4 * limits.kernel_startup + 180)
    log = []

    t0 = time.perf_counter()
    job_args = [str(course.config_dir or course.root), job.assignment, job.student]
    later = settings.feedback and settings.feedback_later  # the page comes in the feedback phase
    if not settings.feedback or later:
        job_args.append("--no-feedback")
    env[forkserver.LOG_DIR_VAR] = str(work)
    if check.ungradable:
        proc = _record_ungradable(course, job, notebook_id)
    else:
        # a child of the slot's warm fork server (nbgrader, torch and the judge already imported)
        proc = _with_lock_retry(lambda: forkserver.run_job(
            slot, job_args, course.root, env, timeout,
            fallback=lambda cmd, cwd, env_, t: run_tool(cmd, cwd, env_, timeout=t)))
    log.append(("autograde + generate_feedback", proc))
    if not check.ungradable:
        result["worker"] = "warm" if getattr(proc, "warm", False) else "fresh"
    result["nbgrader_seconds"] = round(time.perf_counter() - t0, 3)
    if uid is not None:
        sandbox.kill_uid(uid)
    autograded = course.folder("autograded") / job.student / job.assignment / nb_name
    produced = course.folder("feedback") / job.student / job.assignment / f"{notebook_id}.html"
    if proc.returncode != 0:
        what = {3: "nbgrader autograde failed", 4: "nbgrader generate_feedback failed"}.get(
            proc.returncode, f"grading process exited {proc.returncode}")
        result["grader_error"] = f"{what}: {results.first_line(_tail(proc.stderr))}"
    elif check.ungradable is None and not (autograded.exists() and
                                           (produced.exists() or not settings.feedback or later)):
        result["grader_error"] = "nbgrader wrote no autograded notebook or feedback"

    cells = []
    if result["grader_error"] is None:
        scores = _scores(course, job, notebook_id)
        if check.ungradable:
            for ref in course.release[job.assignment].cells:
                meta = ref.metadata.get("nbgrader", {})
                if meta.get("grade"):
                    gid = meta["grade_id"]
                    cells.append({"notebook": notebook_id, "grade_id": gid, "score": 0.0,
                                  "max_score": scores.get(gid, (0, float(meta.get("points", 0))))[1],
                                  "reason": "ungradable", "message": check.ungradable, "diagnoses": []})
            result["notes"].append(f"ungradable: {check.ungradable}")
        else:
            records = None
            rec_file = records_dir / f"{notebook_id}.json"
            if rec_file.exists():
                records = json.loads(rec_file.read_text())
                result["restarts"] = records.get("restarts", 0)
                if isinstance(records.get("timing"), dict):  # where the job's time went (make bench reads it)
                    result["timing"] = {**records["timing"], **_job_timing(proc.stderr)}
                if isinstance(records.get("protections"), dict):  # what the kernels had (the launcher's record)
                    result["isolation"] = records["protections"]
                    result["protections"] = ("scan " if settings.scan and not settings.unsafe else "no-scan ") + \
                        records["protections"].get("summary", "")
            cells = results.cell_reasons(autograded, records, scores)
            results.explain_precheck(cells, check.missing, check.dropped_names)
        feedback_dir = out / "feedback" / job.student / job.assignment
        if feedback_dir.exists():
            shutil.rmtree(feedback_dir)
        feedback_dir.mkdir(parents=True)
        if check.ungradable:
            (feedback_dir / f"{notebook_id}.html").write_text(_ungradable_html(job, check.ungradable))
        elif later:
            result["feedback"] = "pending"
        elif produced.exists():
            feedback_page.polish(produced)
            shutil.copyfile(produced, feedback_dir / produced.name)
    if result["grader_error"] is not None:
        cells = _error_cells(course, job, notebook_id, result["grader_error"])
    (work / "nbgrader.log").write_text("\n".join(f"$ {name}\n{p.stdout}\n{p.stderr}" for name, p in log))
    result["cells"] = cells
    result["late_penalty"] = late_penalty(course, job) if result["grader_error"] is None else 0.0
    # like nbgrader's export: the points of the cells minus the late penalty, never below 0
    result["score"] = max(0.0, float(sum(c["score"] for c in cells)) - result["late_penalty"])
    result["max_score"] = float(sum(c["max_score"] for c in cells))
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["hash"] = job_hash(job, course, limits, settings.hash_mode())
    if result.get("feedback") == "pending":  # done only once its page is there: until then, a scores-only pass
        result["feedback_hash"] = result["hash"]
        result["hash"] = job_hash(job, course, limits, settings.mode() + "+nofeedback")
    results.write_json_atomic(result_path(out, job), result)
    return result


FEEDBACK_LINE = "BACKPROPLAB_FEEDBACK "


def render_feedback(course: Course, settings: Settings, done: list[dict]) -> int:
    """The feedback phase, after every score has landed: the pages of the results marked ``pending``,
    rendered by ``settings.jobs`` warm workers (``nbjob --feedback-only``: one nbconvert set-up for a
    worker's share), polished and copied to ``DIR/feedback``; each result is then final
    (its hash says feedback). A page that cannot be rendered is a note in its result and leaves the scores
    alone; the next run makes it again. Returns the number of pages made."""
    pending = {(r["student_id"], r["assignment"]): r for r in done if r.get("feedback") == "pending"}
    if not pending:
        return 0
    slots = max(1, settings.jobs)
    ordered = sorted(pending, key=lambda key: (key[1], key[0]))  # assignment, then student
    shares = [ordered[k::slots] for k in range(slots)]
    env = grading_env(course.jupyter_path)
    logs = settings.out / "work" / "feedback"
    logs.mkdir(parents=True, exist_ok=True)
    env[forkserver.LOG_DIR_VAR] = str(logs)

    def render(slot: int) -> tuple[dict, float]:
        """One process renders the slot's share, every assignment of it (one template set-up)."""
        share = shares[slot]
        if not share:
            return {}, 0.0
        t0 = time.perf_counter()
        args = [str(course.config_dir or course.root), "--feedback-only", *(f"{a}/{s}" for s, a in share)]
        said = {}
        try:
            proc = forkserver.run_job(slot, args, course.root, env, 120 + 30 * len(share),
                                      fallback=lambda cmd, cwd, env_, t: run_tool(cmd, cwd, env_, timeout=t))
            for line in (proc.stdout or "").splitlines():
                if line.startswith(FEEDBACK_LINE):
                    data = json.loads(line[len(FEEDBACK_LINE):])
                    said[(data["student"], data["assignment"])] = data
        except (subprocess.TimeoutExpired, OSError, ValueError, KeyError, TypeError) as exc:
            said = {key: {"ok": False, "error": f"{type(exc).__name__}: {exc}"} for key in share}
        return said, (time.perf_counter() - t0) / len(share)

    count = 0
    with ThreadPoolExecutor(max_workers=slots) as pool:
        rendered = list(pool.map(render, range(slots)))
    for share, (said, seconds) in zip(shares, rendered, strict=True):
        for student, aid in share:
            res = pending[(student, aid)]
            notebook_id = Path(course.notebooks[aid]).stem
            produced = course.folder("feedback") / student / aid / f"{notebook_id}.html"
            line = said.get((student, aid), {"ok": False, "error": "the feedback process ended before this page"})
            if line.get("ok") and produced.exists():
                feedback_page.polish(produced)
                dest = settings.out / "feedback" / student / aid
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(produced, dest / produced.name)
                res.pop("feedback", None)
                res["hash"] = res.pop("feedback_hash", res.get("hash"))
                if isinstance(res.get("timing"), dict):
                    res["timing"]["feedback"] = round(seconds, 3)  # this page's share of the phase
                count += 1
            else:
                res["notes"] = [*res.get("notes", []), "no feedback page: nbgrader generate_feedback failed "
                                f"({line.get('error') or 'no page written'}); the scores stand, and the next "
                                "run makes the page again"]
            results.write_json_atomic(settings.out / "results" / student / f"{aid}.json", res)
    return count


def _record_ungradable(course: Course, job: Job, notebook_id: str) -> subprocess.CompletedProcess:
    """No notebook to autograde: record the submission in the gradebook with every grade at 0, as
    nbgrader's autograde does for a missing notebook (nbgrader refuses a submission with none)."""
    from nbgrader.api import Gradebook

    last = None
    for attempt in range(6):
        try:
            with warnings.catch_warnings(), Gradebook(course.db_url, course.course_id) as gb:
                warnings.simplefilter("ignore")  # SQLAlchemy autoflush notes from nbgrader's own API
                gb.update_or_create_student(job.student)
                gb.update_or_create_submission(job.assignment, job.student)
                nb = gb.find_submission_notebook(notebook_id, job.assignment, job.student)
                for grade in nb.grades:
                    grade.auto_score = 0
                    grade.needs_manual_grade = False
                gb.db.commit()
            return subprocess.CompletedProcess(["gradebook"], 0, "", "")
        except Exception as exc:  # noqa: BLE001 - retried when locked, else reported
            last = exc
            if not any(m in str(exc) for m in LOCK_MARKERS):
                break
            time.sleep(0.5 * (attempt + 1))
    return subprocess.CompletedProcess(["gradebook"], 3, "", f"Error: recording the submission failed: {last}")


def _tail(text: str | None, n: int = 15) -> str:
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    errs = [ln for ln in lines if "ERROR" in ln or "Error:" in ln or "killed" in ln]
    return "\n".join((errs or lines)[-1:] + lines[-n:])


def stage_timestamp(timestamp: Path, submitted: Path) -> list[str]:
    """Put nbgrader's ``timestamp.txt`` beside the notebook nbgrader grades, so that its late-submission
    plugin applies unchanged. A timestamp nbgrader cannot read is left out (graded on time, no penalty
    guessed) and flagged; returns the notes."""
    from nbgrader.utils import parse_utc

    try:
        info = os.lstat(timestamp)
        if not stat.S_ISREG(info.st_mode) or info.st_size > 4096:
            raise ValueError("not a small regular file")
        text = timestamp.read_text().strip()
        parse_utc(text)
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        return [f"timestamp.txt could not be read ({type(exc).__name__}): graded as on time, no late "
                "penalty applied; check the submission time by hand"]
    (submitted / "timestamp.txt").write_text(text)
    # nbgrader's release_feedback names the feedback page by a hash of this secret (fetch_feedback
    # finds it with the student's copy): it travels with the submission when it is there
    secret = timestamp.parent / "submission_secret.txt"
    try:
        info = os.lstat(secret)
        if stat.S_ISREG(info.st_mode) and info.st_size <= 4096:
            (submitted / "submission_secret.txt").write_text(secret.read_text())
    except OSError:
        pass
    return []


def _error_cells(course: Course, job: Job, notebook_id: str, message: str) -> list[dict]:
    rows = []
    for ref in course.release[job.assignment].cells:
        meta = ref.metadata.get("nbgrader", {})
        if meta.get("grade"):
            rows.append({"notebook": notebook_id, "grade_id": meta["grade_id"], "score": 0.0,
                         "max_score": float(meta.get("points", 0)), "reason": "grader_error",
                         "message": message[:500], "diagnoses": []})
    return rows


def _ungradable_html(job: Job, why: str) -> str:
    import html

    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(job.assignment)}</title></head>"
            f"<body><h1>{html.escape(job.assignment)}: not graded</h1>"
            f"<p>Your submitted notebook could not be graded: {html.escape(why)}.</p>"
            "<p>Every exercise of this notebook scores 0. Open the notebook in JupyterLab, check that it "
            "opens and runs, save it and hand it in again.</p></body></html>")


def prestart_workers(settings: Settings, anything_handed_in: bool) -> None:
    """The local slots' warm workers start importing while the course is set up (a rerun with nothing
    left to grade closes them unused: about 3.7 s of one core each, against that much saved per slot)."""
    if anything_handed_in and not settings.dask:
        forkserver.prestart(max(1, settings.jobs))


class Grader:
    """Run the jobs on ``settings.jobs`` worker slots; each slot has its own sandbox uid."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def run(self, jobs: list[Job], course: Course, on_done=None, on_scores=None) -> list[dict]:
        """Grade ``jobs``; ``on_done(result)`` as each finishes. With feedback pages, the jobs score only,
        then ``on_scores(results)`` runs (the class files land) and the pages are rendered."""
        settings = self.settings
        from .cluster import create_students

        create_students(course.db_url, course.course_id, [job.student for job in jobs])
        if settings.dask:  # the same jobs, on a Dask cluster (cluster.py)
            from .cluster import DaskGrader

            remote = DaskGrader(settings)
            done = remote.run(jobs, course, on_done)
            self.skipped = remote.skipped
            return done
        # the pages come after every score (render_feedback, called once the class files are written)
        settings.feedback_later = settings.feedback
        settings.sandbox_root = sandbox.make_sandbox_root()
        python, python_env = (sandbox.sandbox_python(settings.sandbox_root)
                              if sandbox.is_root() and not settings.unsafe else (None, {}))
        settings.sandbox_python = json.dumps({"python": python, "env": python_env,
                                              "site": sandbox.grader_site_packages()}) if python else ""
        todo, done = [], []
        for job in jobs:
            finished = load_finished(settings.out, job, course, job_hash(job, course, settings.limits,
                                                                          settings.hash_mode()))
            if finished is not None:
                done.append(finished)
            else:
                todo.append(job)
        self.skipped = len(done)
        slots: queue.Queue[int] = queue.Queue()
        for k in range(max(1, settings.jobs)):
            slots.put(k)
        lease_fds: list[int] = []
        if not settings.unsafe and todo:
            settings.slot_uids, lease_fds = sandbox.lease_uids(max(1, settings.jobs))
        lock = threading.Lock()

        def work(job: Job) -> dict:
            slot = slots.get()
            try:
                return grade_one(job, course, settings, slot)
            except Exception as exc:  # noqa: BLE001 - recorded as grader_error, never a silent zero
                res = {"student_id": job.student, "assignment": job.assignment,
                       "cells": _error_cells(course, job, Path(course.notebooks[job.assignment]).stem,
                                             f"{type(exc).__name__}: {exc}"),
                       "grader_error": f"{type(exc).__name__}: {exc}", "notes": [], "seconds": 0.0}
                res["score"], res["max_score"] = 0.0, float(sum(c["max_score"] for c in res["cells"]))
                return res
            finally:
                slots.put(slot)

        bar = None
        if settings.progress and todo:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), unit="nb", desc="grading", dynamic_ncols=True, file=sys.stderr,
                       bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed} elapsed, ETA {remaining}")
        try:
            with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:
                futures = [pool.submit(work, job) for job in todo]
                for fut in as_completed(futures):
                    res = fut.result()
                    with lock:
                        done.append(res)
                        if bar is not None:
                            bar.set_postfix_str(f"{res['student_id']}/{res['assignment']}", refresh=False)
                            bar.update(1)
                        if on_done:
                            on_done(res)
            if settings.feedback_later:
                if on_scores is not None:
                    on_scores(done)  # the class files, before any feedback page
                render_feedback(course, settings, done)  # by the slots' warm workers, still running
        finally:
            if bar is not None:
                bar.close()
            forkserver.shutdown()
            shutil.rmtree(settings.sandbox_root, ignore_errors=True)
            sandbox.release_uids(lease_fds)
        return done


def refresh_manual_scores(course: Course, done: list[dict]) -> None:
    """Read the written answers' scores back from the gradebook (a TA scores them in the formgrader
    after the grader ran), so that the class CSVs agree with ``nbgrader export``."""
    from nbgrader.api import Gradebook, MissingEntry

    from .results import MANUAL

    pending = [r for r in done if any(c["reason"] in MANUAL for c in r["cells"])]
    if not pending:
        return
    with warnings.catch_warnings(), Gradebook(course.db_url, course.course_id) as gb:
        warnings.simplefilter("ignore")
        for res in pending:
            for row in res["cells"]:
                if row["reason"] not in MANUAL:
                    continue
                try:
                    grade = gb.find_grade(row["grade_id"], row["notebook"], res["assignment"], res["student_id"])
                except MissingEntry:
                    continue
                if grade.manual_score is not None:
                    row.update(score=float(grade.manual_score), reason="manually_graded", message="")
                elif grade.needs_manual_grade:
                    row.update(score=0.0, reason="needs_manual_grade", message="written answer: waiting for a grader")
            res["score"] = max(0.0, float(sum(c["score"] for c in res["cells"])) - res.get("late_penalty", 0.0))


def collect_jobs(submitted: Path, assignments: list[str], placed: dict,
                 nbgrader_files: dict | None = None) -> list[Job]:
    extra = nbgrader_files or {}
    return [Job(student, aid, path, extra.get((student, aid), {}).get("timestamp.txt"))
            for (student, aid), path in sorted(placed.items()) if aid in assignments]


def export_csv(course: Course, out: Path) -> subprocess.CompletedProcess:
    """nbgrader's own CSV export of the whole gradebook, beside our files."""
    from .exports_bulk import export_csv as bulk  # the same file as `nbgrader export`, in one SQL query

    return bulk(course.db_url, out / "nbgrader_grades.csv", course.course_id)


def intake(source: Path, out: Path, notebooks: dict[str, str]) -> intake_mod.Intake:
    placed = intake_mod.normalise(source, out / "work" / "submitted", out / "work", notebooks)
    (out / "intake_report.md").write_text(placed.report_markdown())
    return placed
