"""The course library as the grading kernel sees it: without the reference helpers.

The library (``lib/backproplab``) holds, besides plotting, data and the public checks, a few
*reference helpers*: functions that compute an exercise's answer (``bt.mlp_reference`` gives the
gradients lab 3 asks for). On the student's desk they have to be there (the public checks use them
in the student's kernel). When a lab is graded, the checks run in the judge, so the kernel never needs
them: the container binds this view of the library over ``lib/backproplab``, in which each reference
helper's body only raises. A student's code that calls one fails as it would with any missing helper;
the static scan reports the call besides.
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

# module (dotted, under backproplab) -> functions whose body is replaced in the kernel's view
REFERENCE_HELPERS: dict[str, tuple[str, ...]] = {
    "backprop_tools": ("mlp_reference", "deep_reference", "autograd_gradients", "_oracle_loss"),
    "bug_hunt_lab3": ("autograd_backward", "reference_functions"),
}
MESSAGE = ("{name} is a reference helper of the course: it is not available while a lab is graded "
           "(write the computation in your exercise cell)")


def _masked(source: str, names: tuple[str, ...]) -> str:
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            doc = ast.get_docstring(node, clean=False)
            body: list[ast.stmt] = [ast.Expr(ast.Constant(doc))] if doc else []
            body.append(ast.Raise(exc=ast.Call(func=ast.Name("RuntimeError", ast.Load()),
                                               args=[ast.Constant(MESSAGE.format(name=node.name))], keywords=[]),
                                  cause=None))
            node.body = body
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def source_dir() -> Path:
    import backproplab

    return Path(backproplab.__file__).resolve().parent


def view(root: Path | None = None) -> Path:
    """A read-only copy of the library with the reference helpers masked; built once per content
    (``<root>/<hash>/backproplab``, root-owned, 0755) and reused."""
    src = source_dir()
    files = sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for p in files:
        digest.update(str(p.relative_to(src)).encode() + b"\0" + p.read_bytes())
    digest.update(repr(sorted(REFERENCE_HELPERS.items())).encode())
    base = Path(root or os.environ.get("BACKPROPLAB_WORKER_LIB_ROOT") or "/var/tmp/backproplab-worker-lib")
    target = base / digest.hexdigest()[:20] / "backproplab"
    if target.is_dir():
        return target
    base.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=base))
    try:
        out = tmp / "backproplab"
        for p in files:
            rel = p.relative_to(src)
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            names = REFERENCE_HELPERS.get(".".join(rel.with_suffix("").parts))
            if names and p.suffix == ".py":
                dest.write_text(_masked(p.read_text(), names))
            else:
                shutil.copyfile(p, dest)
        for d in [tmp, *[q for q in tmp.rglob("*") if q.is_dir()]]:
            d.chmod(0o755)
        for q in tmp.rglob("*"):
            if q.is_file():
                q.chmod(0o644)
        final = target.parent
        try:
            os.rename(tmp, final)
        except OSError:  # another job built it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
