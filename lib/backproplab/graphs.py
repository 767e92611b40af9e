"""Lab 4: pictures of computation graphs, and the graph helpers its grade cells share.

Two kinds of graph are drawn the same way, inputs on the left and the output on the right:

- a scalar ``Value`` graph (micrograd style), walked through each node's ``_prev`` and labelled
  with its ``_op``, ``data`` and ``grad`` (duck typing: any object with those attributes works);
- a ``torch`` autograd graph, walked from ``tensor.grad_fn`` through ``next_functions``, the graph
  the lecture drew with agtree2dot and Graphviz.

Drawing is pure matplotlib, so it works on a machine with nothing but ``pip install``. When the
``graphviz`` Python package *and* its ``dot`` program are both present, :func:`to_graphviz` gives
the same graph as a Graphviz object as well; nothing else depends on it.

The layout puts each node in the column of its longest distance to the output. That distance is
found by relaxation (repeat until nothing changes), which is quadratic in the worst case: fine for
the few dozen nodes a picture can show, and the reason :func:`nodes_by_depth` refuses big graphs.
It is a drawing tool, not the linear-time ordering the lab asks students to write.

The second half holds what the grade cells of ``lab4_dag_autograd`` share, so that the checks and
their diagnoses are written once: building nodes whose backward rule is fixed by the test (to grade
the sweep without depending on the student's rules), and checking one operator's gradient.
"""

from __future__ import annotations

import contextlib
import gc
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import remote

__all__ = [
    "DagDrawing",
    "value_parents",
    "torch_parents",
    "nodes_by_depth",
    "value_label",
    "torch_label",
    "draw_value_graph",
    "draw_torch_graph",
    "graphviz_available",
    "to_graphviz",
    "replay_backward",
    "paused_gc",
    "rule_node",
    "rule_chain",
    "Node",
    "Graph",
    "build_graph",
    "order_positions",
    "dual_function",
    "sequential_spec",
    "build_sequential",
    "one_pass",
    "counted",
    "calls_of",
    "parameter_state",
    "call_backward",
    "assert_grads",
    "check_value_op",
]

MAX_DRAWN_NODES = 400

# Colours shared by the drawing and the stepper widget.
FACE = "#f4f4f4"
FACE_LEAF = "#e3eefa"
FACE_CURRENT = "#ffd54f"
FACE_RECEIVED = "#c8e6c9"
EDGE = "#555555"


# --------------------------------------------------------------------------------------------
# Walking graphs
# --------------------------------------------------------------------------------------------


def value_parents(node) -> tuple:
    """The operands a ``Value`` was computed from (empty for a leaf)."""
    return tuple(getattr(node, "_prev", ()) or ())


def torch_parents(fn) -> tuple:
    """The autograd nodes feeding ``fn`` (``None`` entries, for inputs that need no gradient, dropped)."""
    return tuple(f for f, _ in getattr(fn, "next_functions", ()) if f is not None)


def _reachable(root, parents: Callable[[Any], Sequence], limit: int) -> list:
    """Every node reachable from ``root``, each once, in the order first met (explicit stack)."""
    seen = {id(root)}
    found = [root]
    todo = [root]
    while todo:
        node = todo.pop()
        for p in parents(node):
            if id(p) not in seen:
                seen.add(id(p))
                found.append(p)
                if len(found) > limit:
                    raise ValueError(
                        f"the graph has more than {limit} nodes: too many to draw or replay here; "
                        "draw a smaller expression"
                    )
                todo.append(p)
    return found


def _depths(nodes: list, parents: Callable[[Any], Sequence]) -> dict[int, int]:
    """Longest number of edges from each node to the root (``nodes[0]``), by relaxation."""
    depth = {id(n): 0 for n in nodes}
    for _ in range(len(nodes) + 1):
        changed = False
        for n in nodes:
            d = depth[id(n)] + 1
            for p in parents(n):
                if depth[id(p)] < d:
                    depth[id(p)] = d
                    changed = True
        if not changed:
            return depth
    raise ValueError("the graph has a cycle: a node is among its own ancestors")


def nodes_by_depth(root, parents: Callable[[Any], Sequence] = value_parents, limit: int = MAX_DRAWN_NODES) -> list:
    """The nodes of a small graph, ``root`` first, each before all of its parents.

    Meant for pictures and for replaying a handful of nodes; graphs with more than ``limit``
    nodes are refused.
    """
    nodes = _reachable(root, parents, limit)
    depth = _depths(nodes, parents)
    rank = {id(n): i for i, n in enumerate(nodes)}
    return sorted(nodes, key=lambda n: (depth[id(n)], rank[id(n)]))


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


def _fmt(x) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.4g}"


def value_label(node, name: str | None = None, grad=None) -> str:
    """Three lines: name and op, data, grad (``grad`` overrides the node's own, for replays)."""
    op = getattr(node, "_op", "") or ""
    head = name or ""
    if op:
        head = f"{head} [{op}]" if head else f"[{op}]"
    elif not head:
        head = "leaf"
    g = getattr(node, "grad", 0.0) if grad is None else grad
    return f"{head}\ndata {_fmt(getattr(node, 'data', float('nan')))}\ngrad {_fmt(g)}"


def torch_label(fn, names: dict[int, str] | None = None) -> str:
    """The autograd node's class; for a leaf (``AccumulateGrad``) the tensor's name and shape."""
    kind = type(fn).__name__
    var = getattr(fn, "variable", None)
    if var is not None:
        name = (names or {}).get(id(var), "leaf")
        return f"{name}\n{tuple(var.shape)}\n{kind}"
    # "TanhBackward0" on two lines ("Tanh" / "Backward0") keeps the boxes narrow.
    head, sep, tail = kind.rpartition("Backward")
    return f"{head}\n{sep}{tail}" if head and sep else kind


@dataclass
class DagDrawing:
    """A drawn graph: positions, one text box per node and one arrow per edge, kept for updates."""

    ax: Any
    nodes: list
    positions: dict[int, tuple[float, float]]
    texts: dict[int, Any] = field(default_factory=dict)
    arrows: list = field(default_factory=list)

    def text_of(self, node):
        return self.texts[id(node)]

    def set_label(self, node, label: str) -> None:
        self.texts[id(node)].set_text(label)

    def set_face(self, node, color: str, linewidth: float = 1.0) -> None:
        patch = self.texts[id(node)].get_bbox_patch()
        patch.set_facecolor(color)
        patch.set_linewidth(linewidth)

    def face_of(self, node):
        return self.texts[id(node)].get_bbox_patch().get_facecolor()


def layout(root, parents: Callable[[Any], Sequence], limit: int = MAX_DRAWN_NODES) -> tuple[list, dict]:
    """Nodes and ``id -> (x, y)``: x from the longest path to the output, y spread within a column."""
    nodes = nodes_by_depth(root, parents, limit)
    depth = _depths(nodes, parents)
    columns: dict[int, list] = {}
    for n in nodes:
        columns.setdefault(depth[id(n)], []).append(n)
    max_depth = max(columns)
    pos: dict[int, tuple[float, float]] = {}
    for d in sorted(columns):
        col = columns[d]
        if d > 0:
            # Place a node near the nodes it feeds (barycentre), so that edges cross less.
            def target(n, d=d):
                ys = [pos[id(c)][1] for c in nodes if id(c) in pos and any(p is n for p in parents(c))]
                return sum(ys) / len(ys) if ys else 0.0

            col.sort(key=target)
        k = len(col)
        for i, n in enumerate(col):
            pos[id(n)] = (float(max_depth - d), (k - 1) / 2.0 - i)
    return nodes, pos


def _fitting_fontsize(ax, pos: dict, labels: list[str], fontsize: float) -> float:
    """The largest size up to ``fontsize`` at which the boxes of a column and of a row do not overlap."""
    ncols = len({xy[0] for xy in pos.values()})
    nrows = max(sum(1 for xy in pos.values() if xy[0] == x) for x in {xy[0] for xy in pos.values()})
    box = ax.get_position()
    width_pt = ax.figure.get_figwidth() * 72 * box.width
    height_pt = ax.figure.get_figheight() * 72 * box.height
    chars = max(len(line) for label in labels for line in label.split("\n"))
    lines = max(label.count("\n") + 1 for label in labels)
    by_width = 0.85 * width_pt / (ncols + 0.2) / (0.62 * chars + 1.0)
    by_height = 0.85 * height_pt / (nrows + 0.4) / (1.2 * lines + 1.0)
    return max(4.0, min(fontsize, by_width, by_height))


def _passes_through_a_box(pos: dict, a, b) -> bool:
    """Whether the straight segment from ``a`` to ``b`` crosses the position of another node."""
    (xa, ya), (xb, yb) = pos[id(a)], pos[id(b)]
    if abs(xb - xa) <= 1.0:
        return False
    for key, (x, y) in pos.items():
        if key in (id(a), id(b)) or not min(xa, xb) < x < max(xa, xb):
            continue
        if abs(ya + (yb - ya) * (x - xa) / (xb - xa) - y) < 0.3:
            return True
    return False


def _draw(ax, root, parents, label_of, leaf_of, limit=MAX_DRAWN_NODES, fontsize=8) -> DagDrawing:
    nodes, pos = layout(root, parents, limit)
    drawing = DagDrawing(ax, nodes, pos)
    fontsize = _fitting_fontsize(ax, pos, [label_of(n) for n in nodes], fontsize)
    for n in nodes:
        x, y = pos[id(n)]
        face = FACE_LEAF if leaf_of(n) else FACE
        drawing.texts[id(n)] = ax.text(
            x, y, label_of(n), ha="center", va="center", fontsize=fontsize, family="monospace", zorder=3,
            bbox=dict(boxstyle="round,pad=0.35", facecolor=face, edgecolor=EDGE, linewidth=1.0),
        )
    for n in nodes:
        ps = parents(n)
        for i, p in enumerate(ps):
            # A node used twice by the same operation (a + a) gets two bent arrows.
            repeats = sum(1 for q in ps if q is p)
            rad = 0.0 if repeats == 1 else 0.25 * (1 if i % 2 == 0 else -1)
            if repeats == 1 and _passes_through_a_box(pos, p, n):
                rad = 0.3  # a long edge over boxes it does not touch: bend it so that it stays visible
            arrow = ax.annotate(
                "", xy=pos[id(n)], xytext=pos[id(p)], zorder=2,
                arrowprops=dict(arrowstyle="-|>", color=EDGE, lw=1.0, shrinkA=0, shrinkB=0,
                                patchA=drawing.texts[id(p)].get_bbox_patch(),
                                patchB=drawing.texts[id(n)].get_bbox_patch(),
                                connectionstyle=f"arc3,rad={rad}"),
            )
            drawing.arrows.append((p, n, arrow))
    xs = [xy[0] for xy in pos.values()]
    ys = [xy[1] for xy in pos.values()]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
    ax.set_axis_off()
    return drawing


def draw_value_graph(ax, root, names: dict | None = None, *, limit: int = MAX_DRAWN_NODES, fontsize: int = 8,
                     drawing_out: list | None = None):
    """Draw the graph of a ``Value`` expression on ``ax``: one box per node with its op, data and grad.

    ``names`` maps nodes to short names (``{x1: "x1"}``; keys are the node objects). Arrows go
    from operands to results. Returns ``ax``; pass a list as ``drawing_out`` to receive the
    :class:`DagDrawing` (used by the stepper widget to update labels in place).
    """
    by_id = {id(k): v for k, v in (names or {}).items()}
    drawing = _draw(ax, root, value_parents, lambda n: value_label(n, by_id.get(id(n))),
                    lambda n: not value_parents(n), limit, fontsize)
    if drawing_out is not None:
        drawing_out.append(drawing)
    return ax


def draw_torch_graph(ax, tensor, params: dict | None = None, *, limit: int = MAX_DRAWN_NODES, fontsize: int = 7,
                     drawing_out: list | None = None):
    """Draw the autograd graph behind ``tensor`` by following ``grad_fn.next_functions``.

    ``params`` maps names to leaf tensors (``dict(model.named_parameters())`` or
    ``{"w1": w1, ...}``) so that leaves are labelled. Returns ``ax``.
    """
    fn = getattr(tensor, "grad_fn", None)
    if fn is None:
        raise ValueError("this tensor has no grad_fn: it is a leaf, or was computed without requires_grad")
    names = {id(t): k for k, t in (params or {}).items()}
    drawing = _draw(ax, fn, torch_parents, lambda f: torch_label(f, names),
                    lambda f: getattr(f, "variable", None) is not None, limit, fontsize)
    if drawing_out is not None:
        drawing_out.append(drawing)
    return ax


def graphviz_available() -> bool:
    """True when both the ``graphviz`` Python package and the ``dot`` program are installed."""
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def to_graphviz(root, kind: str = "value", names: dict | None = None):
    """The same graph as a ``graphviz.Digraph`` (``kind`` is ``"value"`` or ``"torch"``).

    Optional: raises ``RuntimeError`` when Graphviz is not installed; the matplotlib drawings
    above never need it.
    """
    if not graphviz_available():
        raise RuntimeError("Graphviz is not installed (pip install graphviz, plus the `dot` program); "
                           "use draw_value_graph / draw_torch_graph instead")
    import graphviz

    dot = graphviz.Digraph(graph_attr={"rankdir": "LR"}, node_attr={"shape": "box", "fontname": "monospace"})
    if kind == "value":
        by_id = {id(k): v for k, v in (names or {}).items()}
        nodes, parents = nodes_by_depth(root), value_parents
        label = lambda n: value_label(n, by_id.get(id(n)))  # noqa: E731
    elif kind == "torch":
        fn = root.grad_fn if hasattr(root, "grad_fn") else root
        ids = {id(t): k for k, t in (names or {}).items()}
        nodes, parents = nodes_by_depth(fn, torch_parents), torch_parents
        label = lambda f: torch_label(f, ids)  # noqa: E731
    else:
        raise ValueError(f"kind must be 'value' or 'torch', not {kind!r}")
    for n in nodes:
        dot.node(str(id(n)), label(n))
    for n in nodes:
        for p in parents(n):
            dot.edge(str(id(p)), str(id(n)))
    return dot


# --------------------------------------------------------------------------------------------
# Replaying the student's own backward rules
# --------------------------------------------------------------------------------------------


def _noop():
    return None


def replay_backward(root, order: Sequence, after_each: Callable[[int, Any], None] | None = None) -> None:
    """Run the nodes' own ``_backward`` closures one node at a time, from ``root`` back to the leaves.

    ``order`` lists the nodes with every node after its parents (``root`` last); it comes from the
    caller (the student's ``topological_order``, or :func:`nodes_by_depth` reversed for a small
    graph). Intermediate grads start at 0 and ``root`` receives 1; leaves keep what they hold.
    ``after_each(k, node)`` is called after the ``k``-th closure has run.
    """
    for node in order:
        if value_parents(node):
            node.grad = 0.0
    root.grad = root.grad + 1.0
    for k, node in enumerate(order[::-1]):
        getattr(node, "_backward", _noop)()
        if after_each is not None:
            after_each(k, node)


# --------------------------------------------------------------------------------------------
# Helpers for the grade cells of lab4_dag_autograd
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cycle collector while a very large graph is built and swept.

    Every micrograd-style node is part of a reference cycle (its ``_backward`` closure refers to
    the node), so while 100,000 of them are created the collector runs over and over through the
    growing graph and dominates the time. Reference counting still frees everything else.
    """
    worker_was_enabled = _worker_gc(False) if remote.judging() else None  # the student's objects are there
    try:
        with _gc_paused_here():
            yield
    finally:
        if worker_was_enabled:
            _worker_gc(True)


@contextlib.contextmanager
def _gc_paused_here() -> Iterator[None]:
    """:func:`paused_gc` in this process only (what worker-side functions use)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@remote.worker_side
def _worker_gc(enable: bool) -> bool:
    """Turn the cycle collector of the process that holds the student's objects on or off; whether it was on."""
    was = gc.isenabled()
    if enable:
        gc.enable()
    else:
        gc.disable()
    return was


@remote.worker_side
def rule_node(Value, data: float, parents: Sequence, partials: Sequence[float], op: str = "f"):
    """A node of the student's ``Value`` class whose backward rule is fixed by the test.

    ``partials[i]`` is d(node)/d(parents[i]); the closure adds ``partials[i] * node.grad`` into
    each parent. Graphs of such nodes grade the sweep (``backward``) on its own: the answer does
    not depend on whether the student's operator rules are right yet. Built next to the student's
    objects (in the student's kernel when graded): the closure runs there.
    """
    return _rule_node(Value, data, parents, partials, op)


def _rule_node(Value, data, parents, partials, op):
    node = Value(data)
    parents = tuple(parents)
    partials = tuple(float(d) for d in partials)
    node._prev = parents
    node._op = op

    def _rule():
        for parent, local in zip(parents, partials, strict=True):
            parent.grad = parent.grad + local * node.grad

    node._backward = _rule
    return node


@remote.worker_side
def rule_chain(Value, leaf, depth: int, partials: Sequence[Sequence[float]], also: Sequence = (), data: float = 1.0,
               op: str = "f"):
    """The root of a chain of ``depth`` :func:`rule_node` nodes above ``leaf``, built in one go.

    Node ``i`` (from 0, just above ``leaf``) has the parents ``(previous node, *also)`` and the local
    derivatives ``partials[i % len(partials)]``. The cycle collector is paused while it is built."""
    with _gc_paused_here():
        node = leaf
        for i in range(int(depth)):
            node = _rule_node(Value, data, (node, *also), partials[i % len(partials)], op)
    return node


RULE_OPS = ("add", "mul", "scale", "sin")


@remote.worker_side
def rule_graph(Value, leaf_values: Sequence[float], recipe: Sequence[Sequence]) -> list:
    """Every node of a graph of :func:`rule_node` s, built in one go: the leaves ``Value(v)``, then one node
    per ``(op, i, j, c)`` of ``recipe`` on the nodes so far (``i`` and ``j`` taken modulo their number):
    ``add`` (a + b), ``mul`` (a * b), ``scale`` (c * a) or ``sin`` (sin a), with its exact local
    derivatives computed from the parents' data. Grades the sweep alone, on any DAG shape."""
    nodes = [Value(float(v)) for v in leaf_values]
    for op, i, j, c in recipe:
        a, b = nodes[int(i) % len(nodes)], nodes[int(j) % len(nodes)]
        if op == "add":
            nodes.append(_rule_node(Value, a.data + b.data, [a, b], [1.0, 1.0], "+"))
        elif op == "mul":
            nodes.append(_rule_node(Value, a.data * b.data, [a, b], [b.data, a.data], "*"))
        elif op == "scale":
            nodes.append(_rule_node(Value, float(c) * a.data, [a], [float(c)], "*c"))
        elif op == "sin":
            nodes.append(_rule_node(Value, math.sin(a.data), [a], [math.cos(a.data)], "sin"))
        else:
            raise ValueError(f"unknown operation {op!r}; one of {RULE_OPS}")
    return nodes


@remote.worker_side
def grads_of(nodes: Sequence) -> list:
    """``[node.grad for node in nodes]``, as they are (one request when graded)."""
    return [node.grad for node in nodes]


class Node:
    """A bare graph node for the order checks: a name, a ``_prev`` tuple, and nothing else that matters."""

    def __init__(self, name: str = "", *parents) -> None:
        self.name, self._prev, self._op = name, tuple(parents), ("f" if parents else "")
        self.data, self.grad = 0.0, 0.0

    def __repr__(self) -> str:
        return self.name


class Graph:
    """The nodes of a graph built by :func:`build_graph`, in the order of their description."""

    def __init__(self, nodes: list) -> None:
        self.nodes = nodes

    def __len__(self) -> int:
        return len(self.nodes)


@remote.worker_side
def build_graph(parents: Sequence[Sequence[int]], names: Sequence[str] | None = None) -> Graph:
    """The graph of :class:`Node` s: node ``k`` has the parents ``parents[k]`` (indices of earlier nodes, repeats allowed).

    Returned as one :class:`Graph` held where the student's code runs (one reference, not one per node)."""
    with _gc_paused_here():
        nodes: list = []
        for k, ps in enumerate(parents):
            nodes.append(Node(names[k] if names else "", *(nodes[i] for i in ps)))
    return Graph(nodes)


@remote.worker_side
def order_positions(topological_order, graph: Graph, root: int = -1) -> list | str:
    """Call ``topological_order(graph.nodes[root])`` next to the nodes; what it returned, as positions.

    Answers the name of the type returned when it is not a list or tuple; else, for each item in
    order, its index in the graph's node list, or ``-1 - k`` for the ``k``-th distinct object that is
    not one of them. The expected order and the verdict are the test's."""
    nodes = graph.nodes
    with _gc_paused_here():
        order = topological_order(nodes[root])
        if not isinstance(order, (list, tuple)):
            return type(order).__name__
        where = {id(n): k for k, n in enumerate(nodes)}
        foreign: dict[int, int] = {}
        return [where[id(n)] if id(n) in where else -1 - foreign.setdefault(id(n), len(foreign)) for n in order]


@remote.worker_side
def dual_function(Dual, fn):
    """A function of a list of the student's ``Dual`` numbers for ``forward_mode_gradient`` to call.

    It reads each input's ``val`` and ``der`` (a plain number counts as ``Dual(number, 0)``), hands them
    to ``fn(vals, ders)`` (the test's function, which answers ``(value, derivative)``) and returns
    ``Dual(value, derivative)``."""

    def f(duals):
        vals = [float(getattr(d, "val", d)) for d in duals]
        ders = [float(getattr(d, "der", 0.0)) for d in duals]
        value, derivative = fn(vals, ders)
        return Dual(float(value), float(derivative))

    return f


def sequential_spec(model) -> tuple[list, list]:
    """``(layers, parameters)`` of a ``torch.nn.Sequential`` of ``Linear``, ``Tanh`` and ``ReLU`` layers, for
    :func:`build_sequential` (each parameter detached)."""
    import torch

    layers: list = []
    for m in model:
        if isinstance(m, torch.nn.Linear):
            layers.append(["Linear", m.in_features, m.out_features, m.bias is not None])
        elif isinstance(m, (torch.nn.Tanh, torch.nn.ReLU)):
            layers.append([type(m).__name__])
        else:
            raise ValueError(f"sequential_spec: no rule for {type(m).__name__}")
    return layers, [p.detach().clone() for p in model.parameters()]


@remote.worker_side
def build_sequential(layers: Sequence, parameters: Sequence, grad_fill: float | None = None):
    """A ``torch.nn.Sequential`` described by :func:`sequential_spec`, with these parameter values (float64
    when they are), built next to the student's code; every ``.grad`` set to ``grad_fill`` if given."""
    import torch

    modules = []
    for spec in layers:
        if spec[0] == "Linear":
            modules.append(torch.nn.Linear(int(spec[1]), int(spec[2]), bias=bool(spec[3])))
        elif spec[0] in ("Tanh", "ReLU"):
            modules.append(getattr(torch.nn, spec[0])())
        else:
            raise ValueError(f"build_sequential: no rule for {spec[0]!r}")
    model = torch.nn.Sequential(*modules)
    params = list(model.parameters())
    if len(params) != len(parameters):
        raise ValueError("build_sequential: the parameters do not match the layers")
    if parameters:
        model.to(parameters[0].dtype)
    with torch.no_grad():
        for p, value in zip(params, parameters, strict=True):
            p.copy_(value)
    if grad_fill is not None:
        for p in params:
            p.grad = torch.full_like(p, float(grad_fill))
    return model


@remote.worker_side
def one_pass(items: Sequence):
    """``iter(items)``, made where the student's code runs: an iterator that can be walked once."""
    return iter(list(items))


class _Counted:
    """A loss function of ``torch.nn.functional`` that counts its calls."""

    def __init__(self, name: str) -> None:
        import torch

        if name not in ("mse_loss", "cross_entropy", "l1_loss", "nll_loss", "binary_cross_entropy_with_logits"):
            raise ValueError(f"counted: no loss named {name!r}")
        self.fn = getattr(torch.nn.functional, name)
        self.__name__ = name
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@remote.worker_side
def counted(name: str):
    """``torch.nn.functional.<name>``, counting its calls (read them with :func:`calls_of`)."""
    return _Counted(name)


@remote.worker_side
def calls_of(fn) -> int:
    """How many times a :func:`counted` function was called."""
    return int(fn.calls)


@remote.worker_side
def parameter_state(model) -> list:
    """``[(name, value, grad or None), ...]`` of a ``torch`` module's parameters, copies, in order."""
    return [(name, p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
            for name, p in model.named_parameters()]


def call_backward(root, what: str = "backward()") -> None:
    """``root.backward()`` with each way of failing turned into a sentence and a diagnosis tag."""
    try:
        root.backward()
    except NotImplementedError as exc:
        raise AssertionError(f"{what}: Value.backward (or a rule it runs) is not written yet: replace the "
                             "NotImplementedError with your code (diagnosis: not_implemented)") from exc
    except RecursionError as exc:
        raise AssertionError(f"{what} hit Python's recursion limit: the topological order (or the sweep) is "
                             "recursive, so a long chain of nodes overflows the call stack; walk the graph "
                             "with an explicit stack instead (diagnosis: recursion)") from exc
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc} (diagnosis: crash)") from exc


def _grad_tensor(values: Sequence[float], what: str):
    import torch

    try:
        return torch.tensor([float(v) for v in values], dtype=torch.float64)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{what}: grad must be a number, got {values!r} (diagnosis: not_a_tensor)") from exc


def assert_grads(got: dict, want: dict, what: str, *, magnitude: float = 1.0, steps: int = 1) -> None:
    """Compare named gradients (Python numbers) with their references; one line per wrong name.

    Python floats are float64: the tolerance is :func:`checks.tolerances` of float64, with ``magnitude``
    and ``steps`` as documented there (``steps``: how many additions or products the sweep chained)."""
    import torch

    from . import checks

    names = list(want)
    a = _grad_tensor([got[k] for k in names], what)
    e = _grad_tensor([want[k] for k in names], what)
    rule = {"magnitude": magnitude, "steps": steps}
    mismatch = checks.compare(a, e, dtype=torch.float64, **rule)
    if mismatch is None:
        return
    rows = [f"  {k}.grad = {float(got[k]):.10g}, expected {float(want[k]):.10g}"
            for k in names if not checks.close(float(got[k]), float(want[k]), **rule)]
    tag = mismatch.tag
    if e.numel() == 1 and tag not in ("sign", "zero", "nan", "inf"):
        tag = "values"  # any single number is "a constant factor" away from another: say nothing more
    hint = "" if tag == "values" else f"; {checks.DIAGNOSES.get(tag, '')}"
    raise AssertionError(f"{what}: wrong gradients{hint} (diagnosis: {tag})\n" + "\n".join(rows))


@remote.worker_side
def observe_value_op(Value, expr: str, inputs: Sequence[float], names: Sequence[str]) -> dict:
    """One request for :func:`check_value_op`'s usual case, made next to the student's ``Value``: the leaves,
    ``expr`` (the test's own expression, e.g. ``"a * b"``) evaluated on them, the output's data, then the
    leaves' grads after ``backward()`` from 0.25. Observations only; any surprise is left to the full check."""
    leaves = [Value(float(x)) for x in inputs]
    try:
        out = eval(expr, {"__builtins__": {}}, dict(zip(names, leaves, strict=True)))  # noqa: S307 - the test's expression
        data = float(out.data)
    except Exception:  # noqa: BLE001 - the full check explains it
        return {"ok": False}
    try:  # 1. the student's own backward(), leaves from 0.25
        for leaf in leaves:
            leaf.grad = 0.25
        out.backward()
        return {"ok": True, "data": data, "grads": [float(leaf.grad) - 0.25 for leaf in leaves]}
    except Exception:  # noqa: BLE001, S110 - the sweep is not written yet: the rule alone, as the full check does
        pass
    try:  # 2. this graph's closures replayed in an order computed here, from 0 and from 0.25
        order = nodes_by_depth(out)[::-1]
        replays = []
        for start in (0.0, 0.25):
            for leaf in leaves:
                leaf.grad = start
            replay_backward(out, order)
            replays.append([float(leaf.grad) for leaf in leaves])
    except Exception:  # noqa: BLE001
        return {"ok": False}
    return {"ok": True, "data": data, "replay": replays}


def check_value_op(Value, expr: str, build: Callable, torch_build: Callable, inputs: Sequence[float],
                   names: Sequence[str] | None = None) -> None:
    """Check the forward value and the gradients of one operator of the student's ``Value``.

    ``build(*leaves)`` applies the operator with the student's class, ``torch_build(*tensors)`` the
    same with ``torch`` (float64, the reference). The gradients are first taken with the student's
    own ``backward()``; if that fails or disagrees, the operator's rule is checked on its own by
    replaying the small graph's ``_backward`` closures in an order computed here, so that a broken
    sweep (graded elsewhere) does not cost the operator's points. Rules that assign with ``=``
    instead of adding with ``+=`` are recognised by replaying once more with leaves holding 0.25.
    Values are Python floats (float64): the tolerance is :func:`checks.tolerances`'s for float64.
    """
    import torch

    from . import checks

    names = list(names or [chr(ord("a") + i) for i in range(len(inputs))])
    ts = [torch.tensor(float(x), dtype=torch.float64, requires_grad=True) for x in inputs]
    y = torch_build(*ts)
    ref = torch.autograd.grad(y, ts, allow_unused=True)
    want = {k: (0.0 if g is None else float(g)) for k, g in zip(names, ref, strict=True)}
    if remote.judging():  # graded: the usual case in one request; anything else goes the full way below
        seen = observe_value_op(Value, expr, [float(x) for x in inputs], names)

        def close(values) -> bool:
            return checks.close(list(values), [want[k] for k in names])

        if seen.get("ok") is True and checks.close(seen["data"], float(y.detach())):
            if "grads" in seen and close(seen["grads"]):
                return
            if "replay" in seen:
                zero, quarter = seen["replay"]
                # grad + 0.25 is rounded at the size of the grad: that is the magnitude of the difference
                if close(zero) and checks.close([q - z for z, q in zip(zero, quarter, strict=True)], [0.25] * len(zero),
                                                magnitude=max(map(abs, zero), default=1.0)):
                    return

    leaves = [Value(float(x)) for x in inputs]
    try:
        out = build(*leaves)
    except NotImplementedError as exc:
        raise AssertionError(f"`{expr}`: the forward computation raises NotImplementedError; the forward "
                             "part of each operator is given, restore it (diagnosis: not_implemented)") from exc
    except TypeError as exc:
        if expr.lstrip()[:1].isdigit() or expr.lstrip().startswith("-"):
            raise AssertionError(
                f"`{expr}` raised TypeError: {exc}. When the left operand is a plain number Python calls the "
                "right operand's reflected method (__radd__, __rsub__, __rmul__, __rtruediv__), and "
                "unary minus calls __neg__; define them (diagnosis: missing_reflected)") from exc
        raise AssertionError(f"`{expr}` raised TypeError: {exc} (diagnosis: crash)") from exc
    except Exception as exc:
        raise AssertionError(f"`{expr}` raised {type(exc).__name__}: {exc} (diagnosis: crash)") from exc
    if not hasattr(out, "data") or not hasattr(out, "grad"):
        raise AssertionError(f"`{expr}` returned {type(out).__name__}, expected a Value (diagnosis: not_a_value)")
    expected_data = float(y.detach())
    if not checks.close(float(out.data), expected_data):
        raise AssertionError(f"`{expr}` at {dict(zip(names, inputs, strict=True))}: data is {out.data!r}, "
                             f"expected {expected_data!r} (diagnosis: forward)")
    inputs_text = ", ".join(f"{k} = {x:g}" for k, x in zip(names, inputs, strict=True))

    # 1. Through the student's own backward(): leaves start at 0.25 and must accumulate.
    for leaf in leaves:
        leaf.grad = 0.25
    try:
        out.backward()
        got = {k: float(leaf.grad) - 0.25 for k, leaf in zip(names, leaves, strict=True)}
        if checks.close([got[k] for k in names], [want[k] for k in names]):
            return
    except Exception:  # noqa: BLE001 - any failure of the sweep: check the rule alone below
        pass

    # 2. The rule alone: replay this small graph's closures, in an order computed here.
    if not callable(getattr(out, "_backward", None)):
        call_backward(out, f"`{expr}`.backward()")
        assert_grads({k: float(leaf.grad) - 0.25 for k, leaf in zip(names, leaves, strict=True)}, want,
                     f"`{expr}` at {inputs_text}")
        return
    order = nodes_by_depth(out)[::-1]

    def replay(start: float) -> dict:
        for leaf in leaves:
            leaf.grad = start
        try:
            replay_backward(out, order)
        except NotImplementedError as exc:
            raise AssertionError(f"the backward rule used by `{expr}` is not written yet: replace its "
                                 "NotImplementedError with your code (diagnosis: not_implemented)") from exc
        except Exception as exc:
            raise AssertionError(f"the backward rule used by `{expr}` at {inputs_text} raised "
                                 f"{type(exc).__name__}: {exc} (diagnosis: crash)") from exc
        return {k: float(leaf.grad) for k, leaf in zip(names, leaves, strict=True)}

    from_zero = replay(0.0)
    from_quarter = replay(0.25)
    overwritten = [k for k in names  # grad + 0.25 is rounded at the size of the grad
                   if not checks.close(from_quarter[k] - from_zero[k], 0.25, magnitude=abs(from_zero[k]))]
    if overwritten:
        raise AssertionError(
            f"`{expr}`: the backward rule replaces the gradient of {', '.join(overwritten)} instead of adding "
            f"to it. A node can receive gradient from several places (in `a + a` both operands are the same "
            f"node), so every rule must add its share with `+=` (diagnosis: overwrite_not_accumulate)")
    assert_grads(from_zero, want, f"`{expr}` at {inputs_text}")


def check_dual_op(Dual, expr: str, build: Callable, vals: Sequence[float], ders: Sequence[float]) -> None:
    """Check one operation of the student's forward-mode ``Dual`` against ``torch`` (float64).

    ``build`` is applied both to ``Dual(val, der)`` inputs and to float64 tensors; the expected
    derivative is the directional derivative ``sum_i df/dx_i * der_i`` computed by autograd; ``val`` and
    ``der`` are Python floats (float64), compared with :func:`checks.tolerances`'s float64 rule.
    """
    import torch

    from . import checks

    names = [chr(ord("a") + i) for i in range(len(vals))]
    ts = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in vals]
    y = build(*ts)
    grads = torch.autograd.grad(y, ts, allow_unused=True)
    want_val = float(y.detach())
    want_der = sum((0.0 if g is None else float(g)) * float(d) for g, d in zip(grads, ders, strict=True))
    where = ", ".join(f"{k} = Dual({v:g}, {d:g})" for k, v, d in zip(names, vals, ders, strict=True))
    try:
        out = build(*[Dual(v, d) for v, d in zip(vals, ders, strict=True)])
    except NotImplementedError as exc:
        raise AssertionError(f"`{expr}` on Dual numbers is not written yet: replace the NotImplementedError "
                             "with your code (diagnosis: not_implemented)") from exc
    except TypeError as exc:
        tag = "missing_reflected" if expr.lstrip()[:1].isdigit() else "crash"
        raise AssertionError(f"`{expr}` with {where} raised TypeError: {exc} (diagnosis: {tag})") from exc
    except Exception as exc:
        raise AssertionError(f"`{expr}` with {where} raised {type(exc).__name__}: {exc} (diagnosis: crash)") from exc
    if not hasattr(out, "val") or not hasattr(out, "der"):
        raise AssertionError(f"`{expr}` returned {type(out).__name__}, expected a Dual (diagnosis: not_a_dual)")
    if not checks.close(float(out.val), want_val):
        raise AssertionError(f"`{expr}` with {where}: val is {out.val!r}, expected {want_val!r} (diagnosis: forward)")
    got = float(out.der)
    if not checks.close(got, want_der):
        tag = "values"
        if got == 0.0 and want_der != 0.0:
            tag = "zero"
        elif checks.close(-got, want_der):
            tag = "sign"
        raise AssertionError(f"`{expr}` with {where}: der is {got!r}, expected {want_der!r} (diagnosis: {tag})")
