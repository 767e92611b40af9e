"""Turn whatever the instructor received into ``submitted/<student>/<assignment>/<notebook>.ipynb``.

Accepted inputs:

* nbgrader's layout: ``[submitted/]<student>/<assignment>/<notebook>.ipynb``;
* a folder of per-student zip files ``<student>.zip`` holding ``<assignment>/<notebook>.ipynb``,
  ``<notebook>.ipynb`` or ``<student>/<assignment>/<notebook>.ipynb``;
* one zip file holding either of the two above.

A notebook whose name differs from the expected one (``perceptron (1).ipynb``) is placed when it is
the only notebook of that assignment for that student; everything else that cannot be placed
(unknown assignment, a second notebook, extra files, unsafe zip members) is listed in the intake
report, never silently dropped. Editor litter (``.ipynb_checkpoints``, ``__MACOSX``, ``.DS_Store``)
is ignored and counted.

Intake is **link-safe and total** (it runs as root, on files students made): nothing is followed.
Every entry is looked at with ``lstat``; a student folder or notebook that is a symbolic link, a
FIFO, a device or a socket, a notebook that cannot be read, is larger than
:data:`MAX_NOTEBOOK_BYTES` or nests JSON deeper than :data:`MAX_JSON_DEPTH` is *refused*: its place
holds a small marker file naming the reason, and the pre-check (:func:`refusal`) makes that notebook
``ungradable`` with that message; the other students are not affected and no exception leaves
:func:`normalise`. Notebooks are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat``
before a byte is read, so a link or a FIFO swapped in after the look is not followed either.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
LITTER = {".ipynb_checkpoints", "__MACOSX", ".DS_Store", "__pycache__", "Thumbs.db"}
MAX_UNZIPPED = 2 * 1024**3       # refuse zip bombs
MAX_NOTEBOOK_BYTES = 64 * 1024**2  # a lab notebook with its figures is a few MiB
MAX_JSON_DEPTH = 64                # nbformat needs about 8; Python's json recurses (RecursionError)
REFUSED_KEY = "backproplab_refused"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``raw`` nests arrays/objects deeper than ``limit`` (strings skipped; no recursion)."""
    stripped = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", raw)
    depth = 0
    for ch in stripped.translate(None, delete=bytes(set(range(256)) - set(b"[]{}"))):
        if ch in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def read_notebook_bytes(path: Path) -> tuple[bytes | None, str | None]:
    """The bytes of a submitted notebook, or ``(None, why)``: never follows a link, never blocks on a
    FIFO, never reads more than :data:`MAX_NOTEBOOK_BYTES`."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return None, f"the file cannot be examined ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return None, f"the submitted notebook is {_kind(st.st_mode)}, not a regular file: not followed"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        return None, f"the submitted notebook cannot be read ({exc.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, f"the submitted notebook is {_kind(st.st_mode)}, not a regular file: not followed"
        if st.st_size > MAX_NOTEBOOK_BYTES:
            return None, (f"the submitted notebook is {st.st_size / 1024**2:.0f} MiB, more than the "
                          f"{MAX_NOTEBOOK_BYTES // 1024**2} MiB a notebook may have")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_NOTEBOOK_BYTES:
                return None, f"the submitted notebook is larger than {MAX_NOTEBOOK_BYTES // 1024**2} MiB"
            chunks.append(chunk)
    except OSError as exc:
        return None, f"the submitted notebook cannot be read ({exc.strerror})"
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if json_depth_exceeds(raw):
        return None, f"the notebook's JSON is nested more than {MAX_JSON_DEPTH} levels deep"
    return raw, None


def refusal(path: Path) -> str | None:
    """Why the placed notebook at ``path`` must not be graded (``ungradable``), or None.

    Used by the pre-check: a marker written by :func:`normalise` for a refused submission, or the
    same checks as intake (link, FIFO, size, depth) on the file itself."""
    raw, why = read_notebook_bytes(Path(path))
    if why:
        return why
    if len(raw) < 4096 and REFUSED_KEY.encode() in raw:
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get(REFUSED_KEY), str):
            return data[REFUSED_KEY][:300]
    return None


# written by nbgrader's submit/collect next to the notebook: the submission time (late penalties) and
# the secret that names the student's feedback page
NBGRADER_FILES = ("timestamp.txt", "submission_secret.txt")


@dataclass
class Intake:
    placed: dict[tuple[str, str], Path] = field(default_factory=dict)   # (student, aid) -> notebook
    problems: list[str] = field(default_factory=list)                   # things not placed, and why
    refused: dict[tuple[str, str], str] = field(default_factory=dict)   # placed as ungradable, and why
    notes: list[str] = field(default_factory=list)                      # placed with a remark
    ignored: int = 0
    # nbgrader's own files beside a submission (timestamp.txt, submission_secret.txt): kept, not copied
    nbgrader_files: dict[tuple[str, str], dict[str, Path]] = field(default_factory=dict)

    def report_markdown(self) -> str:
        lines = ["# Intake report", "",
                 f"{len(self.placed)} notebook(s) placed for {len({s for s, _ in self.placed})} student(s); "
                 f"{len(self.problems)} item(s) could not be placed; {self.ignored} editor file(s) ignored.", ""]
        if self.problems:
            lines += ["## Not placed", ""] + [f"- {p}" for p in self.problems] + [""]
        if self.refused:
            lines += ["## Refused (graded as `ungradable`)", ""] + [
                f"- {s}/{a}: {why}" for (s, a), why in sorted(self.refused.items())] + [""]
        if self.notes:
            lines += ["## Placed with a remark", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(lines)


def _is_litter(parts: tuple[str, ...]) -> bool:
    return any(p in LITTER or p.startswith("._") for p in parts)


def _safe_extract(zpath: Path, dest: Path, intake: Intake, label: str) -> bool:
    try:
        with zipfile.ZipFile(zpath) as zf:
            total = 0
            for info in zf.infolist():
                name = PurePosixPath(info.filename.replace("\\", "/"))
                if info.is_dir():
                    continue
                if stat.S_ISLNK(info.external_attr >> 16):
                    intake.problems.append(f"{label}: symbolic link {info.filename!r} in the zip (skipped)")
                    continue
                if name.is_absolute() or ".." in name.parts:
                    intake.problems.append(f"{label}: unsafe path {info.filename!r} in the zip (skipped)")
                    continue
                total += info.file_size
                if total > MAX_UNZIPPED:
                    intake.problems.append(f"{label}: the zip unpacks to more than 2 GiB (rest skipped)")
                    break
                target = dest.joinpath(*name.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with zf.open(info) as src, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out)
        return True
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError, NotImplementedError) as exc:
        intake.problems.append(f"{label}: not a readable zip file ({exc})")
        return False


def _files(root: Path, odd: dict | None = None) -> list[tuple[str, ...]]:
    """Every entry under ``root`` that is not a folder, never entering a linked folder (``lstat``);
    entries that are not regular files are also put in ``odd`` (parts -> what they are)."""
    found, stack = [], [()]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(root.joinpath(*rel)) as it:
                entries = list(it)
        except OSError:
            if odd is not None:
                odd[rel] = "a folder that cannot be read"
            continue
        for entry in entries:
            parts = (*rel, entry.name)
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                stack.append(parts)
                continue
            found.append(parts)
            if not stat.S_ISREG(mode) and odd is not None:
                odd[parts] = _kind(mode)
    return sorted(found)


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _collect_student(student: str, root: Path, files: list[tuple[str, ...]], label: str,
                     candidates: dict, intake: Intake, notebooks: dict[str, str], odd: dict | None = None) -> None:
    """Files of one student, relative to ``root``: ``aid/nb``, ``nb`` or ``student/aid/nb``."""
    odd = odd or {}
    for parts in files:
        if parts in odd and not parts[-1].endswith(".ipynb"):
            if not _is_litter(parts):
                intake.problems.append(f"{label}/{'/'.join(parts)}: {odd[parts]}, not followed")
            continue
        if _is_litter(parts):
            intake.ignored += 1
            continue
        rel = "/".join(parts)
        p = list(parts)
        if len(p) >= 3 and p[0] == student:
            p = p[1:]
        by_name = {nb: aid for aid, nb in notebooks.items()}
        if len(p) == 1 and p[0] in by_name:
            p = [by_name[p[0]], p[0]]
        if len(p) == 2 and p[0] in notebooks:
            aid, name = p
            if name.endswith(".ipynb"):
                candidates.setdefault((student, aid), []).append((name, root.joinpath(*parts), f"{label}/{rel}"))
            elif name in NBGRADER_FILES:
                intake.nbgrader_files.setdefault((student, aid), {})[name] = root.joinpath(*parts)
            else:
                intake.problems.append(f"{label}/{rel}: extra file, not graded")
            continue
        intake.problems.append(f"{label}/{rel}: cannot tell which assignment this is "
                               f"(expected <assignment>/<notebook>.ipynb with an assignment among {sorted(notebooks)})")


def normalise(source: Path, dest: Path, work: Path, notebooks: dict[str, str]) -> Intake:
    """Place every submission of ``source`` under ``dest`` (emptied first); ``work`` holds unzipped files.

    ``notebooks`` maps each assignment to grade to its notebook file name.
    """
    intake = Intake()
    try:
        return _normalise(Path(source), dest, work, notebooks, intake)
    except OSError as exc:  # a folder vanished or cannot be read: what was placed stays placed
        intake.problems.append(f"intake stopped early: {exc}")
        return intake


def _normalise(source: Path, dest: Path, work: Path, notebooks: dict[str, str], intake: Intake) -> Intake:
    source = Path(source)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    unzip = work / "unzipped"
    if unzip.exists():
        shutil.rmtree(unzip)
    unzip.mkdir(parents=True)

    if source.is_file():
        if not zipfile.is_zipfile(source):
            intake.problems.append(f"{source.name}: neither a folder nor a zip file")
            return intake
        target = unzip / "_class"
        _safe_extract(source, target, intake, source.name)
        source = target
    if not source.is_dir():
        intake.problems.append(f"{source}: not found")
        return intake
    # A single wrapping folder (a zip of "submitted/" or of "class/"): step into it.
    while True:
        entries = [p for p in source.iterdir() if not _is_litter((p.name,))]
        if len(entries) == 1 and _is_dir(entries[0]) and entries[0].name not in notebooks \
                and not any(_is_dir(c) and c.name in notebooks for c in entries[0].iterdir()):
            source = entries[0]
            continue
        if _is_dir(source / "submitted"):
            source = source / "submitted"
            continue
        break

    candidates: dict[tuple[str, str], list] = {}
    for entry in sorted(source.iterdir()):
        if _is_litter((entry.name,)):
            intake.ignored += 1
            continue
        try:
            mode = os.lstat(entry).st_mode
        except OSError as exc:
            intake.problems.append(f"{entry.name}: cannot be examined ({exc.strerror})")
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            what = _kind(mode)
            if STUDENT_ID.match(entry.stem if entry.suffix.lower() == ".zip" else entry.name):
                student = entry.stem if entry.suffix.lower() == ".zip" else entry.name
                for aid in notebooks:
                    intake.refused[(student, aid)] = (f"the submission {entry.name!r} is {what}, not a folder or "
                                                      "a file: not followed")
            else:
                intake.problems.append(f"{entry.name}: {what}: not followed")
            continue
        if stat.S_ISREG(mode) and entry.suffix.lower() == ".zip":
            student = entry.stem
            if not STUDENT_ID.match(student):
                intake.problems.append(f"{entry.name}: {student!r} is not a usable student id")
                continue
            target = unzip / student
            if _safe_extract(entry, target, intake, entry.name):
                odd: dict = {}
                _collect_student(student, target, _files(target, odd), entry.name, candidates, intake, notebooks,
                                 odd)
        elif stat.S_ISDIR(mode):
            student = entry.name
            if not STUDENT_ID.match(student):
                intake.problems.append(f"{entry.name}/: {student!r} is not a usable student id")
                continue
            odd = {}
            _collect_student(student, entry, _files(entry, odd), entry.name, candidates, intake, notebooks, odd)
        else:
            intake.problems.append(f"{entry.name}: a file outside any student folder, not graded")

    for (student, aid), found in sorted(candidates.items()):
        expected = notebooks[aid]
        exact = [f for f in found if f[0] == expected]
        if exact:
            chosen = exact[0]
            others = [f for f in found if f is not chosen]
        elif len(found) == 1:
            chosen, others = found[0], []
            intake.notes.append(f"{chosen[2]}: placed as {aid}/{expected} (the only notebook of {aid})")
        else:
            for f in found:
                intake.problems.append(f"{f[2]}: wrong notebook name (expected {expected}), and "
                                       f"{len(found)} candidates: none graded")
            continue
        for f in others:
            intake.problems.append(f"{f[2]}: extra notebook, not graded (graded: {expected})")
        raw, why = read_notebook_bytes(chosen[1])
        if why:
            intake.refused[(student, aid)] = f"{why} ({chosen[2]})"
        else:
            _write_new(dest / student / aid / expected, raw)
            intake.placed[(student, aid)] = dest / student / aid / expected
    for (student, aid), why in sorted(intake.refused.items()):
        if (student, aid) in intake.placed:
            continue
        target = dest / student / aid / notebooks[aid]
        _write_new(target, json.dumps({REFUSED_KEY: why}).encode())
        intake.placed[(student, aid)] = target
    return intake


def _write_new(target: Path, data: bytes) -> None:
    """``dest`` was emptied and is the grader's own: create, never follow, never reuse."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
