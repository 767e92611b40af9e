"""Generate the student release ``notebooks/`` from ``solutions/`` with ``nbgrader generate_assignment``.

``python -m backproplab_autograder.release [ASSIGNMENT ...]`` (or ``make release``) first regenerates
each lab's source notebook from its text source (``sources.build``), then its release. ``--check``
changes nothing: it reports source notebooks out of sync with their text and release notebooks that
differ from what nbgrader generates.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from . import sources
from .config import render_config
from .course import ASSIGNMENTS, RELEASE, SOLUTIONS, available_assignments, lab, nbgrader


def generate(assignments: list[str], out_dir: Path, source_dir: Path = SOLUTIONS) -> dict[str, Path]:
    """Release ``assignments`` from ``source_dir`` into ``out_dir/<id>/``; returns the notebook paths.

    Runs in a throw-away nbgrader course so that the committed tree and the instructor's
    gradebook are never touched by a release.
    """
    out = {}
    with tempfile.TemporaryDirectory(prefix="bpl-release-") as tmp:
        root = Path(tmp)
        (root / "nbgrader_config.py").write_text(render_config(root))
        for aid in assignments:
            shutil.copytree(source_dir / aid, root / "source" / aid, ignore=shutil.ignore_patterns(
                ".ipynb_checkpoints", "__pycache__", "*.pyc", ".hypothesis"))
            nbgrader("generate_assignment", aid, "--force", "--no-db", cwd=root)
            dest = out_dir / aid
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(root / "release" / aid, dest)
            out[aid] = dest / ASSIGNMENTS[aid]
    return out


def comparable(path: Path) -> list[tuple]:
    """A notebook reduced to what must match between two releases: cell type, id, source, metadata."""
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.get("id"), c.source, dict(c.metadata)) for c in nb.cells]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignments", nargs="*", help="assignment ids (default: every lab with a source)")
    parser.add_argument("--check", action="store_true", help="only report differences from notebooks/")
    args = parser.parse_args(argv)
    ids = args.assignments or available_assignments()
    unknown = [a for a in ids if a not in ASSIGNMENTS]
    if unknown:
        parser.error(f"unknown assignment(s) {unknown}; course.toml lists {list(ASSIGNMENTS)}")
    if not args.check:
        for aid in ids:
            if sources.build(lab(aid)):
                print(f"regenerated solutions/{aid}/{ASSIGNMENTS[aid]} from its text source")
        for aid, path in generate(ids, RELEASE).items():
            print(f"released {aid} -> {path.relative_to(RELEASE.parent)}")
        return 0
    stale = []
    for aid in ids:
        if sources.stale(lab(aid)):
            print(f"solutions/{aid}/{ASSIGNMENTS[aid]} is out of sync with its .py source: run `make release`",
                  file=sys.stderr)
            stale.append(aid)
    with tempfile.TemporaryDirectory() as tmp:
        for aid, path in generate(ids, Path(tmp)).items():
            committed = RELEASE / aid / ASSIGNMENTS[aid]
            if not committed.exists() or comparable(committed) != comparable(path):
                stale.append(aid)
    for aid in stale:
        print(f"notebooks/{aid} is out of date: run `make release`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
