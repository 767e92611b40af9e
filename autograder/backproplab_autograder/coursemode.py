"""Course mode: grade the collected submissions of an instructor's own nbgrader course.

    backproplab-grade --course COURSE_DIR [--assignment ID] [--student ID ...] [--force] [--jobs N]

The course is the one the instructor runs with nbgrader (``nbgrader_config.py``, the gradebook, the
exchange, ``source/``, ``release/``, ``submitted/`` after ``nbgrader collect``). Its configuration is read
as nbgrader reads it (course id, ``db_url``, folders, the late-submission plugin), and the job writes
where nbgrader's own ``autograde`` would: scores and late penalties into the course's gradebook,
autograded notebooks into ``autograded/``, feedback into ``feedback/`` (so ``nbgrader
release_feedback`` finds it). The protections are the folder mode's: the notebook that is graded is
rebuilt from the release and scanned, runs in the sandboxed kernel under limits, feedback hides hidden
tests. The student's submitted notebook is never modified: the rebuilt copy is staged in the grader's
own folder (``--out``, default ``COURSE_DIR/backproplab``, mode 0700), which nbgrader is pointed at by
an overlay configuration that loads the instructor's and changes only the submitted folder and the
preprocessors.

``setup_course_dir`` prepares a course for this: the source notebooks of the manifest's labs (never
their ``.py`` text sources, which hold the answers), and a block in ``nbgrader_config.py`` that keeps
``.py`` files out of releases and makes nbgrader's own ``autograde`` (the formgrader's button) refuse
with a sentence instead of grading unprotected.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert.exporters import NotebookExporter
from nbgrader.utils import is_grade

from . import grading, policy, sandbox
from .course import ManifestError

MARK = "# --- backproplab (added by `backproplab-grade setup-course`) ---"
PROTECT_BLOCK = f"""
{MARK}
# The labs' text sources (*.py beside each notebook) hold the answers: never released.
c.CourseDirectory.ignore.append("*.py")
# nbgrader's own autograde (the formgrader's Autograde button) would run students' code unprotected:
# it refuses with a sentence and deletes nothing; `backproplab-grade --course .` grades instead.
c.Autograde.exporter_class = "backproplab_autograder.coursemode.RefuseUnprotected"
"""


class CourseError(ValueError):
    """The course folder cannot be graded as asked: the message says why and what to run."""


class RefuseUnprotected(NotebookExporter):
    """Set as nbgrader's autograde exporter by the protect block: nbgrader builds its exporter before it
    touches any folder, so raising here stops the formgrader's Autograde before it removes or writes
    anything."""

    def __init__(self, *args, **kwargs):
        import sys

        from nbgrader.converters.base import NbGraderException

        message = ("This course grades with backproplab-grade, which runs students' code in a sandbox: run "
                   "`backproplab-grade --course <course folder>` (add `--student ID --force` for one student). "
                   "nbgrader's own autograde is switched off here so that it never runs code unprotected; no "
                   "autograded notebook was changed.")
        sys.stderr.write(f"[backproplab] {message}\n")  # the command line; the formgrader shows the error
        raise NbGraderException(message)


@dataclass
class CourseConfig:
    root: Path
    course_id: str
    db_url: str
    config_file: Path
    source: Path
    release: Path
    submitted: Path
    autograded: Path
    feedback: Path


def read_config(course_dir: Path) -> CourseConfig:
    """The course's nbgrader configuration, resolved the way nbgrader resolves it from that folder."""
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    course_dir = Path(course_dir).resolve()
    config_file = course_dir / "nbgrader_config.py"
    if not config_file.is_file():
        raise CourseError(f"{course_dir} has no nbgrader_config.py: is it an nbgrader course folder?")
    cwd = os.getcwd()
    try:
        os.chdir(course_dir)  # a relative root or db_url means "from the course folder", as for nbgrader
        config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
        config.CourseDirectory.root = str(course_dir)
        cd = CourseDirectory(config=config)
        dirs = {k: Path(cd.format_path(getattr(cd, f"{k}_directory"), ".", ".")).resolve()
                for k in ("source", "release", "submitted", "autograded", "feedback")}
        return CourseConfig(course_dir, cd.course_id, cd.db_url, config_file, **dirs)
    except CourseError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken config is the instructor's to fix: say so
        raise CourseError(f"{config_file}: nbgrader cannot read it ({type(exc).__name__}: {exc})") from None
    finally:
        os.chdir(cwd)


def _sqlite_path(db_url: str) -> Path | None:
    return Path(db_url[len("sqlite:///"):]) if db_url.startswith("sqlite:///") else None


def gradebook_assignments(cfg: CourseConfig) -> dict[str, list[str]]:
    """Assignment id -> notebook ids, from the course's gradebook."""
    from nbgrader.api import Gradebook

    path = _sqlite_path(cfg.db_url)
    if path is not None and not path.exists():
        raise CourseError(f"the course has no gradebook yet ({path} does not exist): run "
                          "`nbgrader generate_assignment <lab>` in the course folder first")
    with Gradebook(cfg.db_url, cfg.course_id) as gb:
        return {a.name: sorted(nb.name for nb in a.notebooks) for a in gb.assignments}


def overlay_config(cfg: CourseConfig, staging: Path) -> str:
    """The configuration the grading job loads: the instructor's, then the grader's changes."""
    return "\n".join([
        "# Written by backproplab-grade --course: the instructor's configuration, then what the grader",
        "# changes for its jobs (the staged submissions and the protected preprocessors). Do not edit.",
        "c = get_config()  # noqa: F821",
        f"load_subconfig({str(cfg.config_file)!r})  # noqa: F821",
        f"c.CourseDirectory.root = {str(cfg.root)!r}",
        f"c.CourseDirectory.course_id = {cfg.course_id!r}",
        f"c.CourseDirectory.db_url = {cfg.db_url!r}",
        f"c.CourseDirectory.submitted_directory = {str(staging)!r}",
        'c.Autograde.exporter_class = "nbconvert.exporters.NotebookExporter"',
        grading.AUTOGRADE_CONFIG,
    ])


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def setup(cfg: CourseConfig, out: Path, assignments: list[str]) -> grading.Course:
    """A ``grading.Course`` whose jobs write into the instructor's course."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    for private in ("work", "results", "feedback", "staging"):
        (out / private).mkdir(exist_ok=True)
        os.chmod(out / private, 0o700)
    token_file = out / "course-token"
    if not token_file.exists():
        token_file.write_text(secrets.token_hex(8))
    (out / "config").mkdir(exist_ok=True)
    (out / "config" / "nbgrader_config.py").write_text(overlay_config(cfg, out / "staging"))
    jupyter_path = out / "jupyter"
    sandbox.write_kernelspec(jupyter_path / "kernels")
    in_gradebook = gradebook_assignments(cfg)
    names, release, source_hash, protected = {}, {}, {}, {}
    for aid in assignments:
        if aid not in in_gradebook:
            raise CourseError(f"assignment {aid!r} is not in the course's gradebook: run "
                              f"`nbgrader generate_assignment {aid}` in {cfg.root} first")
        notebooks = in_gradebook[aid]
        if len(notebooks) != 1:
            raise CourseError(f"assignment {aid!r} has {len(notebooks)} notebooks in the gradebook; "
                              "backproplab-grade grades one notebook per assignment")
        names[aid] = notebooks[0] + ".ipynb"
        released = cfg.release / aid / names[aid]
        src = cfg.source / aid / names[aid]
        for path, what in ((released, "release"), (src, "source")):
            if not path.is_file():
                raise CourseError(f"{path} is missing (the assignment's {what} notebook): run "
                                  f"`nbgrader generate_assignment {aid}` in {cfg.root}")
        release[aid] = nbformat.read(str(released), as_version=4)
        source_hash[aid] = _digest(cfg.source / aid)
        src_nb = nbformat.read(str(src), as_version=4)
        protected[aid] = policy.protected_names([c.source for c in src_nb.cells if c.get("cell_type") == "code"
                                                 and is_grade(c)])
    return grading.Course(cfg.root, cfg.db_url, assignments, token_file.read_text().strip(), source_hash,
                          release, jupyter_path, names, protected, course_id=cfg.course_id,
                          config_dir=out / "config", staging=out / "staging")


def setup_course_dir(course_dir: Path, labs: list[str] | None = None) -> list[str]:
    """Copy the manifest's source notebooks into ``COURSE_DIR/source`` and add the protect block to
    the course's ``nbgrader_config.py`` (once). Returns what was done, one line each."""
    from .course import labs as manifest_labs

    course_dir = Path(course_dir).resolve()
    chosen = [lab for lab in manifest_labs() if labs is None or lab.id in labs]
    unknown = sorted(set(labs or []) - {lab.id for lab in chosen})
    if unknown:
        raise ManifestError(f"unknown lab(s) {unknown}; course.toml lists {[lab.id for lab in manifest_labs()]}")
    done = []
    config = course_dir / "nbgrader_config.py"
    if not config.exists():
        raise CourseError(f"{config} does not exist: create the course with `nbgrader quickstart` (or write the "
                          "configuration) first; see docs/instructor-guide.md")
    text = config.read_text()
    if MARK not in text:
        config.write_text(text.rstrip("\n") + "\n" + PROTECT_BLOCK)
        done.append(f"added the backproplab block to {config}")
    for lab in chosen:
        dest = course_dir / "source" / lab.id
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lab.solution, dest / lab.notebook)
        done.append(f"copied {lab.id}/{lab.notebook} into {dest.parent}")
    return done
