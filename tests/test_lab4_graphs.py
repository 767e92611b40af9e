"""Lab 4's pictures and widget: graph drawings of Value and torch graphs, and the backward stepper.

The Value graphs here come from a tiny engine written in this file, so the tests need no
solution; the figures they draw are saved as ``figures/lab4_*.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from backproplab import graphs
from backproplab.widgets import backward_stepper

FIGURES = Path(__file__).resolve().parents[1] / "figures"


class V:
    """Just enough of a micrograd-style node for drawing and stepping."""

    def __init__(self, data, prev=(), op=""):
        self.data, self.grad, self._prev, self._op = float(data), 0.0, tuple(prev), op
        self._backward = lambda: None

    def _out(self, data, prev, op, rule):
        out = V(data, prev, op)
        out._backward = lambda: rule(out)
        return out

    def __add__(self, o):
        def rule(out):
            self.grad += out.grad
            o.grad += out.grad

        return self._out(self.data + o.data, (self, o), "+", rule)

    def __mul__(self, o):
        def rule(out):
            self.grad += o.data * out.grad
            o.grad += self.data * out.grad

        return self._out(self.data * o.data, (self, o), "*", rule)

    def tanh(self):
        def rule(out):
            self.grad += (1 - out.data**2) * out.grad

        return self._out(math.tanh(self.data), (self,), "tanh", rule)


def order_of(root):
    """Parents before children, root last (iterative post-order)."""
    out, seen, stack = [], {id(root)}, [(root, iter(root._prev))]
    while stack:
        node, it = stack[-1]
        nxt = next((p for p in it if id(p) not in seen), None)
        if nxt is None:
            stack.pop()
            out.append(node)
        else:
            seen.add(id(nxt))
            stack.append((nxt, iter(nxt._prev)))
    return out


def small_graph():
    a, b = V(2.0), V(3.0)
    m = a * b
    y = m + a
    return a, b, m, y


def boxes(ax) -> list[str]:
    """The node labels drawn on ``ax`` (arrows are text artists too, with no text)."""
    return [t.get_text() for t in ax.texts if t.get_text()]


def new_ax(size=(6, 3)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.add_subplot()


def test_value_graph_has_one_labelled_box_per_node_and_one_arrow_per_edge():
    a, b, m, y = small_graph()
    y.grad, a.grad = 1.0, 4.0
    fig, ax = new_ax()
    holder = []
    assert graphs.draw_value_graph(ax, y, {a: "a", b: "b", y: "y"}, drawing_out=holder) is ax
    labels = boxes(ax)
    assert len(labels) == 4
    assert any(t.startswith("a\n") and "data 2" in t and "grad 4" in t for t in labels), labels
    assert any(t.startswith("y [+]") and "data 8" in t and "grad 1" in t for t in labels), labels
    assert any(t.startswith("[*]") and "data 6" in t for t in labels), labels
    assert len(holder[0].arrows) == 4  # a->m, b->m, m->y, a->y
    # inputs on the left, the output on the right
    assert holder[0].positions[id(y)][0] > holder[0].positions[id(m)][0] > holder[0].positions[id(b)][0]
    fig.savefig(FIGURES / "lab4_value_graph.png", dpi=80)


def test_a_node_used_twice_by_one_operation_gets_two_arrows():
    a = V(1.5)
    s = a + a
    fig, ax = new_ax()
    holder = []
    graphs.draw_value_graph(ax, s, drawing_out=holder)
    assert len(boxes(ax)) == 2
    assert [(p is a, n is s) for p, n, _ in holder[0].arrows] == [(True, True), (True, True)]


def test_layout_puts_every_node_after_its_parents_and_refuses_huge_graphs():
    x = V(0.5)
    node = x
    for _ in range(30):
        node = (node * V(1.0)).tanh() + x
    order = graphs.nodes_by_depth(node)
    where = {id(n): i for i, n in enumerate(order)}
    assert order[0] is node and len(order) == len(set(where))
    assert all(where[id(p)] > where[id(n)] for n in order for p in n._prev)
    for _ in range(400):
        node = node + x
    with pytest.raises(ValueError, match="too many to draw"):
        graphs.nodes_by_depth(node)


def tanh_network_loss():
    torch.manual_seed(0)
    w1 = torch.nn.Parameter(torch.rand(20, 10))
    b1 = torch.nn.Parameter(torch.rand(20))
    w2 = torch.nn.Parameter(torch.rand(5, 20))
    b2 = torch.nn.Parameter(torch.rand(5))
    x = torch.rand(10)
    h = torch.tanh(w1.mv(x) + b1)
    y = torch.tanh(w2.mv(h) + b2)
    loss = (y - torch.rand(5)).pow(2).sum()
    return loss, {"w1": w1, "b1": b1, "w2": w2, "b2": b2}


def test_torch_graph_is_walked_from_grad_fn_with_named_leaves():
    loss, params = tanh_network_loss()
    fig, ax = new_ax((10, 3.5))
    holder = []
    graphs.draw_torch_graph(ax, loss, params, drawing_out=holder)
    labels = boxes(ax)
    assert sum("Tanh\nBackward0" in t for t in labels) == 2
    assert sum("AccumulateGrad" in t for t in labels) == 4
    assert any(t.startswith("w1\n(20, 10)") for t in labels), labels
    assert any(t.startswith("Sum\n") for t in labels)  # the root is drawn
    fig.savefig(FIGURES / "lab4_torch_graph.png", dpi=80)


def test_shared_weight_feeds_two_operations_in_the_torch_graph():
    w1 = torch.randn(4, 4, requires_grad=True)
    w2 = torch.randn(4, 4, requires_grad=True)
    x = torch.randn(4)
    x1 = w1 @ x
    q = (w1 @ (x1 + x + w2 @ x1)).norm()
    fig, ax = new_ax()
    holder = []
    graphs.draw_torch_graph(ax, q, {"w1": w1, "w2": w2}, drawing_out=holder)
    leaf_w1 = [n for n in holder[0].nodes if getattr(n, "variable", None) is w1]
    assert len(leaf_w1) == 1
    assert sum(1 for p, _, _ in holder[0].arrows if p is leaf_w1[0]) == 2


def test_torch_graph_of_a_leaf_is_refused_with_a_sentence():
    fig, ax = new_ax()
    with pytest.raises(ValueError, match="no grad_fn"):
        graphs.draw_torch_graph(ax, torch.ones(3, requires_grad=True))


@pytest.mark.skipif(not graphs.graphviz_available(), reason="the graphviz package or the dot program is not installed")
def test_graphviz_path_when_installed():
    a, b, m, y = small_graph()
    dot = graphs.to_graphviz(y, names={a: "a"})
    assert "a" in dot.source and "[*]" in dot.source
    loss, params = tanh_network_loss()
    assert "Tanh" in graphs.to_graphviz(loss, kind="torch", names=params).source


def test_without_graphviz_the_optional_path_explains_itself(monkeypatch):
    monkeypatch.setattr(graphs, "graphviz_available", lambda: False)
    a, b, m, y = small_graph()
    with pytest.raises(RuntimeError, match="draw_value_graph"):
        graphs.to_graphviz(y)
    fig, ax = new_ax()
    graphs.draw_value_graph(ax, y)  # the matplotlib drawing never needs Graphviz
    assert len(boxes(ax)) == 4


# ------------------------------------------------------------------------------------------
# The backward stepper
# ------------------------------------------------------------------------------------------


def test_stepper_runs_one_node_per_step_and_shows_adjoints_adding_up():
    a, b, m, y = small_graph()
    st = backward_stepper.backward_stepper(y, order_of, {a: "a", b: "b", m: "m", y: "y"})
    assert st.status is None and st.nb_steps == 4
    assert st.grads_at(0) == {"y": 1.0, "m": 0.0, "a": 0.0, "b": 0.0}
    assert st.grads_at(1) == {"y": 1.0, "m": 1.0, "a": 1.0, "b": 0.0}  # y's rule: + distributes
    assert st.grads_at(2) == {"y": 1.0, "m": 1.0, "a": 4.0, "b": 2.0}  # m's rule: * switches; a adds up
    assert st.grads_at(4) == st.grads_at(2)  # leaves pass nothing on
    st.step = 2
    assert st.current_node() is m
    drawing = st.drawing
    assert drawing.face_of(m)[:3] == pytest.approx(_rgb(graphs.FACE_CURRENT))
    assert drawing.face_of(a)[:3] == pytest.approx(_rgb(graphs.FACE_RECEIVED))
    assert "grad 4" in drawing.text_of(a).get_text() and "grad 2" in drawing.text_of(b).get_text()
    assert "m [*]" in st.title.get_text() and "a: 1 &rarr; 4" in st.message.value
    assert st.view.last_render_seconds is not None and st.view.image.value[:4] == b"\x89PNG"
    # the student's graph is left as it was
    assert (a.grad, b.grad, m.grad, y.grad) == (0.0, 0.0, 0.0, 0.0)


def _rgb(color):
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def test_stepper_steps_through_a_shared_node_in_order():
    x = V(0.5)
    t = x.tanh()
    z = t * t + x
    st = backward_stepper.BackwardStepper(z, order_of, {x: "x", t: "t", z: "z"})
    order = order_of(z)[::-1]
    assert [st.current_node(k) for k in range(1, st.nb_steps + 1)] == order
    final = st.grads_at(st.nb_steps)
    assert final["x"] == pytest.approx(2 * math.tanh(0.5) * (1 - math.tanh(0.5) ** 2) + 1)


@pytest.mark.parametrize(("topo", "expected"), [
    (None, "Pass your `topological_order`"),
    (lambda root: (_ for _ in ()).throw(NotImplementedError()), "not written yet"),
    (lambda root: [root], "raised"),
    (lambda root: list(reversed(order_of(root))), "must end with the root"),
])
def test_stepper_says_when_the_student_code_is_not_ready(topo, expected):
    a, b, m, y = small_graph()
    if expected == "raised":
        def topo(root):  # noqa: F811 - a crash inside the student's function
            raise KeyError("boom")
    st = backward_stepper.backward_stepper(y, topo)
    assert st.status is not None and expected in st.status
    assert expected.split("`")[0] in st.message.value or expected in st.message.value
    assert st.nb_steps == 0
    st.show(0)  # still draws the graph without a traceback
    assert len(boxes(st.ax)) == 4 and all("grad ?" in t for t in boxes(st.ax))


def test_stepper_stops_at_a_rule_that_is_not_written():
    a, b = V(2.0), V(3.0)
    m = a * b
    y = m.tanh()

    def stub():
        raise NotImplementedError()

    m._backward = stub
    st = backward_stepper.backward_stepper(y, order_of)
    assert st.nb_steps == 1  # the tanh rule ran, then the `*` rule stopped the replay
    assert "`*`" in st.status and "not written yet" in st.status
    st.step = 1
    assert st.current_node() is y


def test_no_straight_arrow_runs_over_a_box_it_does_not_touch():
    # the data-dependent loop of the notebook: w[0] used by both inputs, w[1] by one
    w = torch.nn.Parameter(torch.rand(3, 4, 4))
    u = torch.tanh(w[0].mv(torch.rand(4)))
    v = torch.tanh(w[1].mv(torch.tanh(w[0].mv(torch.rand(4)))))
    q = u.dot(v)
    out = []
    _, ax = new_ax((8, 3))
    graphs.draw_torch_graph(ax, q, {"w": w}, drawing_out=out)
    drawing = out[0]
    rads = [arrow.arrow_patch.get_connectionstyle().rad for _, _, arrow in drawing.arrows]
    straight = [(p, n) for (p, n, _), r in zip(drawing.arrows, rads, strict=True) if r == 0]
    assert not any(graphs._passes_through_a_box(drawing.positions, p, n) for p, n in straight)
    assert any(r != 0 for r in rads)  # this graph has such an edge, and it is bent
