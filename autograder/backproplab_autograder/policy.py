"""Policy checks on a submission's source: "gradients written by hand" means no autograd.

The check reads the submitted notebook's code, never runs it, so nothing the student's code does at
run time can change the verdict. For each exercise with a rule it looks at the exercise's solution
cell and, transitively, at every function or class of the notebook that cell refers to (a helper in
another cell cannot hide a call), and reports each forbidden construct with its cell and line:

- ``autograd``: ``.backward(``, ``.grad`` reads, ``requires_grad``, ``torch.autograd``, ``torch.func``,
  ``enable_grad`` / ``set_grad_enabled``, ``grad_fn``; names imported from those modules under any
  alias; the same words hidden in strings (``getattr(loss, "backward")``, ``__import__(...)``);
- ``optimizer``: ``torch.optim`` and its classes, for the exercise whose point is the hand-written update.

The grader gives every grade cell of a flagged exercise zero points with reason ``policy`` and a
message naming the line; the exercise's other cells and the other exercises are not affected.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import nbformat

AUTOGRAD_ATTRS = {"backward", "grad", "requires_grad", "requires_grad_", "grad_fn", "retain_grad", "enable_grad",
                  "set_grad_enabled", "autograd", "func", "vjp", "jvp", "jacobian", "hessian", "functional"}
AUTOGRAD_MODULES = ("torch.autograd", "torch.func", "functorch")
AUTOGRAD_WORDS = ("autograd", "backward", "requires_grad", "enable_grad", "set_grad_enabled", "grad_fn", "functorch")
OPTIM_ATTRS = {"optim"}
OPTIM_MODULES = ("torch.optim",)
OPTIM_WORDS = ("torch.optim", "optim.")

# assignment -> exercise (solution cell id) -> rules
RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "lab2_gradient_descent": {
        "quadratic_grad": ("autograd",),
        "numerical_gradient": ("autograd",),
        "train_mlp_gd": ("optimizer",),
    },
    "lab3_mlp_backprop": {
        "backward": ("autograd",),
        "deep_backward": ("autograd",),
    },
    "lab4_dag_autograd": {
        "dag_backward": ("autograd",),
    },
}

EXPLAIN = {
    "autograd": "this exercise asks for gradients written by hand, without torch's autograd",
    "optimizer": "this exercise asks for a hand-written parameter update, without torch.optim",
}


@dataclass(frozen=True)
class Finding:
    exercise: str
    rule: str
    cell: int  # index of the code cell in the notebook
    line: int  # line number inside that cell, from 1
    code: str

    def message(self) -> str:
        return (f"policy: `{self.exercise}` uses {'autograd' if self.rule == 'autograd' else 'torch.optim'} "
                f"(cell {self.cell}, line {self.line}: `{self.code.strip()[:80]}`): {EXPLAIN[self.rule]} "
                f"(diagnosis: policy)")


def _parse(source: str) -> ast.Module | None:
    # IPython magics and shell escapes are not Python: blank them so the rest still parses.
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _defined_names(tree: ast.AST) -> dict[str, ast.AST]:
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.setdefault(target.id, node)
    return out


def _local_names(node: ast.AST) -> set[str]:
    """Parameters and assigned names inside the functions of ``node``: they are not notebook globals."""
    names = set()
    for fn in ast.walk(node):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = fn.args
            for arg in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]:
                if arg is not None:
                    names.add(arg.arg)
            for sub in ast.walk(fn):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.add(sub.id)
    return names


def _forbidden_aliases(trees: list[ast.AST], modules: tuple[str, ...]) -> set[str]:
    """Names bound anywhere in the notebook to a forbidden module or to something imported from one."""
    aliases = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith(modules):
                        aliases.add(a.asname if a.asname else a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                for a in node.names:
                    full = f"{mod}.{a.name}"
                    if mod.startswith(modules) or full.startswith(modules):
                        aliases.add(a.asname or a.name)
    aliases.discard("torch")  # `import torch.autograd` binds `torch`; attribute access is checked instead
    return aliases


def _violations(node: ast.AST, rule: str, aliases: set[str]) -> list[ast.AST]:
    attrs, words = (AUTOGRAD_ATTRS, AUTOGRAD_WORDS) if rule == "autograd" else (OPTIM_ATTRS, OPTIM_WORDS)
    # strings that are whole statements (docstrings, comments-as-strings) do nothing: skip them
    inert = {id(sub.value) for sub in ast.walk(node) if isinstance(sub, ast.Expr) and isinstance(sub.value, ast.Constant)}
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in attrs:
            if rule == "autograd" and sub.attr in {"func", "functional", "jacobian", "hessian", "vjp", "jvp"}:
                # only torch.func / torch.autograd.functional style chains, not any `.func` attribute
                base = sub.value
                if not (isinstance(base, ast.Name) and base.id == "torch") and not (
                        isinstance(base, ast.Attribute) and base.attr == "autograd"):
                    continue
            found.append(sub)
        elif isinstance(sub, ast.keyword) and rule == "autograd" and sub.arg == "requires_grad":
            if not (isinstance(sub.value, ast.Constant) and sub.value.value is False):
                found.append(sub.value)
        elif isinstance(sub, ast.Name) and sub.id in aliases:
            found.append(sub)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and id(sub) not in inert:
            text = sub.value
            if any(w in text for w in words) and len(text) < 200:
                found.append(sub)
    return found


def scan(nb: nbformat.NotebookNode, assignment: str) -> list[Finding]:
    """Every policy violation in a submitted notebook, in cell and line order."""
    rules = RULES.get(assignment, {})
    if not rules:
        return []
    code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
    parsed = [(i, c, _parse(c.get("source", ""))) for i, c in code_cells]
    trees = [t for _, _, t in parsed if t is not None]
    definitions: dict[str, tuple[int, ast.AST, str]] = {}
    for i, c, t in parsed:
        if t is not None:
            for name, node in _defined_names(t).items():
                definitions[name] = (i, node, c.get("source", ""))
    findings: list[Finding] = []
    for exercise, exercise_rules in rules.items():
        cell = next(((i, c, t) for i, c, t in parsed
                     if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == exercise), None)
        if cell is None or cell[2] is None:
            continue
        # the exercise's cell, plus every notebook definition it reaches by name
        scope = [(cell[0], cell[2], cell[1].get("source", ""))]
        seen = {exercise}
        frontier = [cell[2]]
        while frontier:
            node = frontier.pop()
            local = _local_names(node)
            for sub in ast.walk(node):
                if (isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in local
                        and sub.id not in seen and sub.id in definitions):
                    seen.add(sub.id)
                    idx, defn, src = definitions[sub.id]
                    if idx != cell[0]:
                        scope.append((idx, defn, src))
                    frontier.append(defn)
        for rule in exercise_rules:
            modules = AUTOGRAD_MODULES if rule == "autograd" else OPTIM_MODULES
            aliases = _forbidden_aliases(trees, modules)
            for idx, node, src in scope:
                lines = src.splitlines()
                for bad in _violations(node, rule, aliases):
                    line = getattr(bad, "lineno", 1)
                    findings.append(Finding(exercise, rule, idx, line, lines[line - 1] if line <= len(lines) else ""))
    return sorted(set(findings), key=lambda f: (f.exercise, f.cell, f.line))


def grade_ids_for(exercise: str, grade_ids: list[str]) -> list[str]:
    """The grade cells that test an exercise: ``test_<exercise>`` and ``test_<exercise>_<aspect>``."""
    return [g for g in grade_ids if g == f"test_{exercise}" or g.startswith(f"test_{exercise}_")]
