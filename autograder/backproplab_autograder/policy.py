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

from . import course

AUTOGRAD_ATTRS = {"backward", "grad", "requires_grad", "requires_grad_", "grad_fn", "retain_grad", "enable_grad",
                  "set_grad_enabled", "autograd", "func", "vjp", "jvp", "jacobian", "hessian", "functional"}
AUTOGRAD_MODULES = ("torch.autograd", "torch.func", "functorch", "backproplab.bug_hunt_lab3.autograd_backward",
                    "backproplab.bug_hunt_lab3.reference_functions", "backproplab.backprop_tools.mlp_reference",
                    "backproplab.backprop_tools.deep_reference", "backproplab.backprop_tools.autograd_gradients",
                    "backproplab.backprop_tools._oracle_loss")
# the course's own reference helpers compute gradients with autograd: calling one is using autograd
AUTOGRAD_ATTRS |= {"mlp_reference", "deep_reference", "autograd_gradients", "_oracle_loss", "autograd_backward",
                   "reference_functions"}
AUTOGRAD_WORDS = ("autograd", "backward", "requires_grad", "enable_grad", "set_grad_enabled", "grad_fn", "functorch")
OPTIM_ATTRS = {"optim", "adam_with_torch", "torch_adam_losses"}  # the capstone's grading helpers use torch.optim
OPTIM_MODULES = ("torch.optim", "backproplab.capstone_checks.adam_with_torch",
                 "backproplab.capstone_checks.torch_adam_losses")
OPTIM_WORDS = ("torch.optim", "optim.")

# assignment -> exercise (solution cell id) -> rules: read from the course manifest (course.toml)
RULES: dict[str, dict[str, tuple[str, ...]]] = course.RULES

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


# --- tampering: constructs that can change the verdict instead of the answer -------------------------
# Applied to EVERY solution cell of every lab (and of any course the grader is given). An exercise
# never needs any of these; each one is a known way for code running in the kernel to change what
# the tests see (see autograder/README.md, "Threat model"). The flagged cell is not run at all.

# identifier (a name, an attribute, an imported module or name) -> what it is, for the message
TAMPER_WORDS: dict[str, str] = {
    # torch's hooks into every tensor operation
    "TorchFunctionMode": "a torch function mode", "TorchDispatchMode": "a torch dispatch mode",
    "__torch_function__": "a __torch_function__ override", "__torch_dispatch__": "a __torch_dispatch__ override",
    "_python_dispatch": "torch's dispatch internals", "_C": "torch's C internals",
    # IPython: rewriting or blanking the cells that run after this one
    "get_ipython": "the IPython shell (input transformers, magics, events)", "IPython": "the IPython shell",
    "input_transformers_post": "an IPython input transformer",
    "input_transformers_cleanup": "an IPython input transformer", "ast_transformers": "an IPython AST transformer",
    "register_magic_function": "an IPython magic", "user_ns": "the IPython namespace",
    # the interpreter itself
    "settrace": "a trace function", "setprofile": "a profile function", "_getframe": "frame inspection",
    "_current_frames": "frame inspection", "f_locals": "frame inspection", "f_globals": "frame inspection",
    "f_back": "frame inspection", "tb_frame": "frame inspection", "gi_frame": "frame inspection",
    "addaudithook": "an audit hook", "meta_path": "the import system", "path_hooks": "the import system",
    "excepthook": "the exception hook", "displayhook": "the display hook",
    "builtins": "the builtins module", "__builtins__": "the builtins module", "__import__": "a dynamic import",
    "importlib": "a dynamic import", "runpy": "running other code", "exec": "exec() of a string",
    "eval": "eval() of a string", "compile": "compile() of a string", "globals": "globals()",
    "locals": "locals()", "vars": "vars()", "setattr": "setattr()", "delattr": "delattr()",
    "__dict__": "an object's __dict__", "__class__": "an object's class", "__globals__": "a function's globals",
    "__code__": "a function's code", "__closure__": "a function's closure", "__subclasses__": "class internals",
    "__bases__": "class internals", "__mro__": "class internals", "__setattr__": "__setattr__",
    "__delattr__": "__delattr__", "__wrapped__": "a wrapped function", "__defaults__": "a function's defaults",
    "__kwdefaults__": "a function's defaults", "FunctionType": "building functions", "CodeType": "building code",
    "inspect": "the inspect module", "get_objects": "the garbage collector's object lists",
    "get_referrers": "the garbage collector's object lists", "get_referents": "the garbage collector's object lists",
    "ctypes": "ctypes",
    "cffi": "cffi", "mmap": "mmap",
    # other processes, threads, signals
    "subprocess": "a subprocess", "multiprocessing": "other processes", "pty": "a pseudo-terminal",
    "threading": "threads", "_thread": "threads", "concurrent": "threads or processes", "signal": "signals",
    "atexit": "exit handlers", "asyncio": "background tasks",
    # files, databases, network
    "open": "opening files", "sqlite3": "a database", "sqlalchemy": "a database", "shelve": "a database",
    "socket": "the network", "ssl": "the network", "urllib": "the network", "http": "the network",
    "requests": "the network", "ftplib": "the network", "smtplib": "the network", "pathlib": "files",
    "shutil": "files", "glob": "files", "tempfile": "files", "io": "files", "pickle": "pickle",
    "marshal": "marshal", "dill": "pickle", "nbgrader": "the grader", "nbformat": "notebook files",
    "nbclient": "notebook execution", "jupyter_client": "kernels",
}
# dotted (module, attribute) pairs: the attribute alone is an ordinary word (model.eval(), x.kill)
TAMPER_CHAINS: dict[tuple[str, str], str] = {
    ("os", "system"): "a shell command", ("os", "popen"): "a shell command", ("os", "fork"): "a new process",
    ("os", "forkpty"): "a new process", ("os", "kill"): "signals", ("os", "killpg"): "signals",
    ("os", "setsid"): "a detached process", ("os", "setpgid"): "a detached process",
    ("os", "posix_spawn"): "a new process", ("os", "posix_spawnp"): "a new process",
    ("os", "open"): "opening files", ("os", "fdopen"): "opening files", ("os", "listdir"): "listing files",
    ("os", "scandir"): "listing files", ("os", "walk"): "listing files", ("os", "environ"): "the environment",
    ("os", "remove"): "removing files", ("os", "unlink"): "removing files", ("os", "rename"): "moving files",
    ("os", "replace"): "moving files", ("os", "chmod"): "file permissions", ("os", "dup2"): "file descriptors",
    ("sys", "modules"): "the module table", ("sys", "stdout"): "the output stream",
    ("sys", "stderr"): "the output stream", ("torch", "load"): "loading a pickle", ("torch", "save"): "files",
    ("torch", "library"): "custom torch operators", ("torch", "overrides"): "torch overrides",
    ("torch", "utils"): "torch internals", ("torch", "set_default_tensor_type"): "global torch state",
    ("numpy", "load"): "loading a pickle", ("gc", "get_objects"): "the garbage collector's object lists",
    ("gc", "get_referrers"): "the garbage collector's object lists",
}
for _m in ("execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve",
           "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe"):
    TAMPER_CHAINS[("os", _m)] = "running another program"
# words that are only suspicious as a bare name (a call or an import), not as an attribute
_NAME_ONLY = {"exec", "eval", "compile", "open", "globals", "locals", "vars", "setattr", "delattr", "io", "glob",
              "signal", "inspect", "gc", "http", "requests", "concurrent", "asyncio", "pickle", "_thread"}
# distinctive enough to be flagged inside a string too (getattr(x, "__torch_function__"), importlib by name)
_STRING_WORDS = [w for w in TAMPER_WORDS if w not in _NAME_ONLY and len(w) > 3 and w not in {"IPython", "http"}]
_STRING_WORDS += ["gradebook", "os.system", "sys.modules", "__import__", "/course", "autograded", "submitted",
                  "source/", ".db", "/proc", "/etc/", "/root", "/home", "/tmp"]
_STRING_RE = __import__("re").compile("|".join(__import__("re").escape(w) for w in _STRING_WORDS))
_DUNDER_OK = {"__init__", "__name__", "__doc__", "__qualname__", "__len__", "__call__", "__repr__", "__str__",
              "__getitem__", "__iter__", "__next__", "__enter__", "__exit__", "__module__", "__annotations__",
              "__file__"}
# operator methods (an engine's ``__radd__`` returning ``self.__add__(other)``): ordinary code (issue 14)
_DUNDER_OK |= {f"__{op}__" for op in (
    "add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "floordiv", "rfloordiv", "mod", "rmod",
    "pow", "rpow", "matmul", "rmatmul", "neg", "pos", "abs", "lt", "le", "gt", "ge", "eq", "ne", "hash", "bool",
    "float", "int", "index", "contains", "setitem", "format", "and", "or", "xor", "invert")}


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; None when the root is not a plain name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call, ast.Starred)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def import_bindings(tree: ast.AST) -> dict[str, str]:
    """Name -> the module path it is bound to by the imports of ``tree`` (``np`` -> ``numpy``)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                out[a.asname or a.name] = f"{node.module or ''}.{a.name}"
    return out


@dataclass(frozen=True)
class TamperFinding:
    exercise: str     # grade_id of the solution cell
    line: int
    code: str
    what: str

    rule = "tampering"

    def message(self) -> str:
        return (f"policy: the cell of `{self.exercise}` uses {self.what} (line {self.line}: "
                f"`{self.code.strip()[:80]}`); graded exercises may not change the grader, the notebook, "
                "other processes or files, so this cell was not run and its tests score 0 (diagnosis: policy)")


def _tamper_nodes(tree: ast.AST, imported: dict[str, str], protected: set[str]) -> list[tuple[ast.AST, str]]:
    """(node, what) for every tampering construct in one solution cell."""
    found: list[tuple[ast.AST, str]] = []
    names = dict(imported)
    names.update(import_bindings(tree))
    # aliases of imported things (`t = torch`, `c = checks.compare`) count as imported
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(_root(node.value), ast.Name) and _root(node.value).id in names:
            if not isinstance(node.value, ast.Call):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        names.setdefault(t.id, names[_root(node.value).id])
    inert = {id(s.value) for s in ast.walk(tree) if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)}

    def module_of(chain: list[str]) -> list[str]:
        head = names.get(chain[0], chain[0]).split(".")
        return head + chain[1:]

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in TAMPER_WORDS:
            found.append((node, TAMPER_WORDS[node.id]))
        elif isinstance(node, ast.Attribute):
            if node.attr in TAMPER_WORDS and node.attr not in _NAME_ONLY:
                found.append((node, TAMPER_WORDS[node.attr]))
            elif node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in _DUNDER_OK \
                    and not (isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                             and node.value.func.id == "super") \
                    and not (node.attr == "__class__" and isinstance(node.value, ast.Name) and node.value.id == "self"):
                found.append((node, f"the special attribute {node.attr}"))
            else:
                chain = _chain(node)
                if chain:
                    full = module_of(chain)
                    for i in range(len(full) - 1):
                        if (full[i], full[i + 1]) in TAMPER_CHAINS:
                            found.append((node, TAMPER_CHAINS[(full[i], full[i + 1])]))
                            break
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom):
                mods += [f"{node.module or ''}.{a.name}" for a in node.names]
            for mod in mods:
                parts = mod.split(".")
                hit = next((p for p in parts if p in TAMPER_WORDS), None)
                pair = next(((a, b) for a, b in zip(parts, parts[1:]) if (a, b) in TAMPER_CHAINS), None)
                if hit or pair:
                    found.append((node, TAMPER_WORDS[hit] if hit else TAMPER_CHAINS[pair]))
                    break
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inert:
            m = _STRING_RE.search(node.value)
            if m:
                found.append((node, f"the name {m.group(0)!r} in a string"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            if len(node.args) >= 2 and not (isinstance(node.args[1], ast.Constant)
                                            and isinstance(node.args[1].value, str)):
                found.append((node, "getattr() with a computed name"))
        elif isinstance(node, ast.Global):
            for n in node.names:
                if n in protected:
                    found.append((node, f"a new value for `{n}`, which the tests use"))
    # changing something imported: attribute or item assignment, deletion, augmented assignment
    targets: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets += node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets.append(node.target)
        elif isinstance(node, ast.Delete):
            targets += node.targets
    for t in targets:
        for sub in ([t] if not isinstance(t, (ast.Tuple, ast.List)) else t.elts):
            if isinstance(sub, (ast.Attribute, ast.Subscript)):
                root = _root(sub)
                if not isinstance(root, ast.Name):
                    found.append((sub, "an assignment to an attribute of a computed object"))
                elif root.id in names or root.id in protected:
                    found.append((sub, f"a change to `{root.id}`, which is imported (monkeypatching)"))
    # rebinding at the top level a name the tests read (an imported module, a builtin)
    for node in tree.body if isinstance(tree, ast.Module) else []:
        bound = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound = [node.name]
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.With)):
            bound = [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, mod in import_bindings(node).items():
                if name in protected and imported.get(name, mod) != mod:
                    found.append((node, f"a new value for `{name}`, which the tests use"))
        for n in bound:
            if n in protected:
                found.append((node, f"a new value for `{n}`, which the tests use"))
    return found


def tampering(nb: nbformat.NotebookNode, protected: set[str] | None = None) -> list[TamperFinding]:
    """Tampering constructs in every solution cell of ``nb``.

    The first code cell (the import block) gives the imported names; ``protected`` adds the names
    the grade cells read that a solution must not rebind (builtins such as ``any`` or ``isinstance``).
    """
    code = [c for c in nb.cells if c.get("cell_type") == "code"]
    imported: dict[str, str] = {}
    if code and not code[0].get("metadata", {}).get("nbgrader", {}).get("solution"):
        tree = _parse(code[0].get("source", ""))
        if tree is not None:
            imported = import_bindings(tree)
    protected = set(protected or ()) | set(imported)
    findings: list[TamperFinding] = []
    for cell in code:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("solution"):
            continue
        src = cell.get("source", "")
        tree = _parse(src)
        exercise = meta.get("grade_id", "?")
        if tree is None:
            continue  # a syntax error fails its tests on its own
        lines = src.splitlines()
        seen = set()
        for node, what in _tamper_nodes(tree, imported, protected):
            line = getattr(node, "lineno", 1)
            if (line, what) in seen:
                continue
            seen.add((line, what))
            findings.append(TamperFinding(exercise, line, lines[line - 1] if line <= len(lines) else "", what))
    return sorted(findings, key=lambda f: (f.exercise, f.line))


def protected_names(grade_sources: list[str]) -> set[str]:
    """Builtins the grade cells read: a solution cell that rebinds one at the top level is tampering."""
    import builtins

    names = set()
    for src in grade_sources:
        tree = _parse(src)
        if tree is None:
            continue
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return {n for n in names if hasattr(builtins, n)}
