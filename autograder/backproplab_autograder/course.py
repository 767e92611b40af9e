"""Where things are: the repository, the course manifest (``course.toml``), and how to call nbgrader.

The manifest is the one list of labs. Everything that walks the labs (release, tests, grading, the
demo class, the benchmarks) asks this module, so a lab missing from the manifest is reported as an
error by :func:`check_manifest` instead of being skipped silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AUTOGRADER = REPO / "autograder"
SOLUTIONS = REPO / "solutions"
RELEASE = REPO / "notebooks"
MANIFEST = REPO / "course.toml"

KNOWN_RULES = ("autograd", "optimizer")


class ManifestError(ValueError):
    """The course manifest is malformed or disagrees with the folders on disk."""


@dataclass(frozen=True)
class Lab:
    id: str
    notebook: str
    title: str
    points: float
    rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    weight: float = 1.0   # how much the lab counts in course_grades.csv's course_percent

    @property
    def source(self) -> Path:
        """The authored text source (jupytext percent format)."""
        return SOLUTIONS / self.id / (Path(self.notebook).stem + ".py")

    @property
    def solution(self) -> Path:
        """The nbgrader source notebook, generated from :attr:`source`."""
        return SOLUTIONS / self.id / self.notebook

    @property
    def release(self) -> Path:
        return RELEASE / self.id / self.notebook


def parse_manifest(text: str, where: str = "course.toml") -> list[Lab]:
    """Parse manifest text into labs, with a message naming the entry for every mistake."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{where}: not valid TOML ({exc})") from None
    labs, seen = [], set()
    for i, entry in enumerate(data.get("lab", [])):
        missing = [k for k in ("id", "notebook", "title", "points") if k not in entry]
        if missing:
            raise ManifestError(f"{where}: lab #{i + 1} lacks {', '.join(missing)}")
        if entry["id"] in seen:
            raise ManifestError(f"{where}: lab {entry['id']!r} is listed twice")
        if not str(entry["notebook"]).endswith(".ipynb"):
            raise ManifestError(f"{where}: lab {entry['id']!r}: notebook must end in .ipynb")
        rules = {}
        for name, kinds in entry.get("rules", {}).items():
            bad = [k for k in kinds if k not in KNOWN_RULES]
            if bad:
                raise ManifestError(f"{where}: lab {entry['id']!r}, rule {name!r}: unknown kind {bad} "
                                    f"(known: {list(KNOWN_RULES)})")
            rules[name] = tuple(kinds)
        seen.add(entry["id"])
        weight = entry.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ManifestError(f"{where}: lab {entry['id']!r}: weight must be a number >= 0")
        labs.append(Lab(entry["id"], entry["notebook"], entry["title"], float(entry["points"]), rules,
                        float(weight)))
    if not labs:
        raise ManifestError(f"{where}: no [[lab]] entries")
    return labs


@cache
def labs() -> tuple[Lab, ...]:
    return tuple(parse_manifest(MANIFEST.read_text(), str(MANIFEST)))


def lab(aid: str) -> Lab:
    for entry in labs():
        if entry.id == aid:
            return entry
    raise ManifestError(f"unknown assignment {aid!r}; course.toml lists {[x.id for x in labs()]}")


def check_manifest(solutions: Path = SOLUTIONS) -> list[str]:
    """Every disagreement between the manifest and the folders: a lab folder under ``solutions/``
    that the manifest does not list, or a listed lab whose source is missing."""
    problems = []
    listed = {x.id for x in labs()}
    for folder in sorted(p for p in solutions.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        if folder.name not in listed:
            problems.append(f"solutions/{folder.name} is not in course.toml: add a [[lab]] entry for it")
    for entry in labs():
        if not (solutions / entry.id / (Path(entry.notebook).stem + ".py")).is_file():
            problems.append(f"course.toml lists {entry.id}, but solutions/{entry.id}/"
                            f"{Path(entry.notebook).stem}.py does not exist")
    return problems


# Compatibility views of the manifest, for code that only needs names.
ASSIGNMENTS = {x.id: x.notebook for x in labs()}
RULES = {x.id: x.rules for x in labs() if x.rules}


def available_assignments() -> list[str]:
    """Every lab of the manifest, in course order. Raises if the manifest and the folders disagree."""
    problems = check_manifest()
    if problems:
        raise ManifestError("\n".join(problems))
    return [x.id for x in labs()]


def tool_env() -> dict[str, str]:
    """The environment for nbgrader and friends: this interpreter's bin/ first on PATH (for alembic)."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def nbgrader(*args: str, cwd: Path | str = AUTOGRADER, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run ``nbgrader ARGS`` with this environment's executable; output is captured."""
    exe = Path(sys.executable).parent / "nbgrader"
    cmd = [str(exe) if exe.exists() else "nbgrader", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
