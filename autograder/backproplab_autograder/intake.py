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
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
LITTER = {".ipynb_checkpoints", "__MACOSX", ".DS_Store", "__pycache__", "Thumbs.db"}
MAX_UNZIPPED = 2 * 1024**3       # refuse zip bombs


@dataclass
class Intake:
    placed: dict[tuple[str, str], Path] = field(default_factory=dict)   # (student, aid) -> notebook
    problems: list[str] = field(default_factory=list)                   # things not placed, and why
    notes: list[str] = field(default_factory=list)                      # placed with a remark
    ignored: int = 0

    def report_markdown(self) -> str:
        lines = ["# Intake report", "",
                 f"{len(self.placed)} notebook(s) placed for {len({s for s, _ in self.placed})} student(s); "
                 f"{len(self.problems)} item(s) could not be placed; {self.ignored} editor file(s) ignored.", ""]
        if self.problems:
            lines += ["## Not placed", ""] + [f"- {p}" for p in self.problems] + [""]
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
                if name.is_absolute() or ".." in name.parts:
                    intake.problems.append(f"{label}: unsafe path {info.filename!r} in the zip (skipped)")
                    continue
                total += info.file_size
                if total > MAX_UNZIPPED:
                    intake.problems.append(f"{label}: the zip unpacks to more than 2 GiB (rest skipped)")
                    break
                target = dest.joinpath(*name.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        return True
    except (zipfile.BadZipFile, OSError) as exc:
        intake.problems.append(f"{label}: not a readable zip file ({exc})")
        return False


def _files(root: Path) -> list[tuple[str, ...]]:
    return sorted(p.relative_to(root).parts for p in root.rglob("*") if p.is_file())


def _collect_student(student: str, root: Path, files: list[tuple[str, ...]], label: str,
                     candidates: dict, intake: Intake, notebooks: dict[str, str]) -> None:
    """Files of one student, relative to ``root``: ``aid/nb``, ``nb`` or ``student/aid/nb``."""
    for parts in files:
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
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name not in notebooks \
                and not any(c.is_dir() and c.name in notebooks for c in entries[0].iterdir()):
            source = entries[0]
            continue
        if (source / "submitted").is_dir():
            source = source / "submitted"
            continue
        break

    candidates: dict[tuple[str, str], list] = {}
    for entry in sorted(source.iterdir()):
        if _is_litter((entry.name,)):
            intake.ignored += 1
            continue
        if entry.is_file() and entry.suffix.lower() == ".zip":
            student = entry.stem
            if not STUDENT_ID.match(student):
                intake.problems.append(f"{entry.name}: {student!r} is not a usable student id")
                continue
            target = unzip / student
            if _safe_extract(entry, target, intake, entry.name):
                _collect_student(student, target, _files(target), entry.name, candidates, intake, notebooks)
        elif entry.is_dir():
            student = entry.name
            if not STUDENT_ID.match(student):
                intake.problems.append(f"{entry.name}/: {student!r} is not a usable student id")
                continue
            _collect_student(student, entry, _files(entry), entry.name, candidates, intake, notebooks)
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
        target = dest / student / aid / expected
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(chosen[1], target)
        intake.placed[(student, aid)] = target
    return intake
