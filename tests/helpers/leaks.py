"""The lines of a source notebook that only its answers and hidden tests hold: what must never reach
a student (the release, lib/, the student kit)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat


def solution_lines(path: Path, also_public: set[str] | None = None) -> list[str]:
    """Substantial lines written only between BEGIN/END SOLUTION or HIDDEN TESTS markers
    (a line that the source also shows outside those regions, or that ``also_public`` holds, is
    public anyway)."""
    nb = nbformat.read(path, as_version=4)
    secret, public = [], set()
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            s = line.strip()
            if re.match(r"#+ *BEGIN (SOLUTION|HIDDEN TESTS)", s):
                inside = True
                continue
            if re.match(r"#+ *END (SOLUTION|HIDDEN TESTS)", s):
                inside = False
                continue
            if inside and len(s) >= 28 and not s.startswith("#"):
                secret.append(s)
            elif not inside:
                public.add(s)
    return [s for s in secret if s not in public and s not in (also_public or set())]


def public_lines(path: Path) -> set[str]:
    """Every stripped line of a source notebook outside the answer and hidden-test regions."""
    nb = nbformat.read(path, as_version=4)
    public, inside = set(), False
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            s = line.strip()
            if re.match(r"#+ *BEGIN (SOLUTION|HIDDEN TESTS)", s):
                inside = True
            elif re.match(r"#+ *END (SOLUTION|HIDDEN TESTS)", s):
                inside = False
            elif not inside:
                public.add(s)
    return public
