"""Lab 4: step through a backward pass on a ``Value`` graph, one node at a time.

The widget runs no backward rule of its own. It asks the student's ``topological_order`` for the
order, gives the output a gradient of 1, then calls the student's own ``_backward`` closures one
node at a time, from the output back to the leaves, and records every node's ``grad`` after each
call. Step ``k`` shows the graph after ``k`` closures have run: the node just processed is
highlighted, the parents that have just received gradient are marked, and the labels show the
adjoints as they add up. The student's graph is left as it was found (its grads are restored).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import graphs
from ._base import FigureView, student_function_status

__all__ = ["BackwardStepper", "backward_stepper"]


class BackwardStepper:
    """The stepper's state and drawing, usable without a browser (tests set ``step`` directly)."""

    def __init__(self, root, topological_order: Callable | None, names: dict | None = None,
                 size: tuple[float, float] = (8.0, 4.2)):
        import ipywidgets as w

        from ..plots import new_figure

        self.root = root
        self.names = {id(k): v for k, v in (names or {}).items()}
        self.nodes = graphs.nodes_by_depth(root)  # for drawing; the replay uses the student's order
        for i, n in enumerate(n for n in self.nodes[::-1] if id(n) not in self.names):
            self.names[id(n)] = f"n{i}"
        self.message = w.HTML()
        self.status = student_function_status(topological_order, "topological_order", lambda f: f(root))
        self.order: list = []
        self.processed: list = []  # the node whose closure ran at step k (index k - 1)
        self.snapshots: list[dict[int, float]] = []  # grads of every drawn node after k closures
        if self.status is None:
            self._record(topological_order)

        self.fig, self.ax = new_figure(size=size)
        holder: list = []
        graphs.draw_value_graph(self.ax, root, {n: self.names[id(n)] for n in self.nodes}, drawing_out=holder)
        self.drawing: graphs.DagDrawing = holder[0]
        self.title = self.ax.set_title("", fontsize=9)
        self.view = FigureView(self.fig)

        n = len(self.processed)
        self.slider = w.IntSlider(value=0, min=0, max=n, description="step", continuous_update=True)
        self.play = w.Play(value=0, min=0, max=n, interval=900, description="play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.widget = w.VBox([w.HBox([self.play, self.slider]), self.view.image, self.message])
        self.show(0)

    # -- recording -------------------------------------------------------------------------

    def _grads(self) -> dict[int, float]:
        out = {}
        for n in self.nodes:
            try:
                out[id(n)] = float(n.grad)
            except (TypeError, ValueError):
                out[id(n)] = float("nan")
        return out

    def _record(self, topological_order: Callable) -> None:
        try:
            order = list(topological_order(self.root))
        except Exception as exc:  # noqa: BLE001 - shown to the student instead of a traceback
            self.status = f"`topological_order` raised {type(exc).__name__}: {exc}. Fix it above, then run this cell again."
            return
        if not order or order[-1] is not self.root:
            self.status = ("`topological_order(root)` must end with the root (the output) itself; "
                           "fix it above, then run this cell again.")
            return
        self.order = order
        saved = {id(n): n.grad for n in self.nodes}
        try:
            for n in self.nodes:
                n.grad = 0.0
            seed = self._grads()
            seed[id(self.root)] = 1.0  # replay_backward gives the root its gradient 1 first
            self.snapshots.append(seed)

            def after(k, node):
                self.processed.append(node)
                self.snapshots.append(self._grads())

            graphs.replay_backward(self.root, order, after_each=after)
        except NotImplementedError:
            node = self.order[::-1][len(self.processed)]
            op = getattr(node, "_op", "") or "?"
            self.status = (f"The backward rule of the `{op}` node {self.names.get(id(node), '')} is not written yet "
                           f"(NotImplementedError): the steps stop there. Write that rule in `Value`, run its cell, "
                           "rebuild the expression and run this cell again.")
        except Exception as exc:  # noqa: BLE001
            self.status = f"A backward rule raised {type(exc).__name__}: {exc}. The steps stop there."
        finally:
            for n in self.nodes:
                n.grad = saved[id(n)]

    # -- state the tests read ----------------------------------------------------------------

    @property
    def nb_steps(self) -> int:
        return len(self.processed)

    @property
    def step(self) -> int:
        return self.slider.value

    @step.setter
    def step(self, k: int) -> None:
        self.slider.value = k  # the observer redraws

    def current_node(self, k: int | None = None):
        """The node whose backward rule ran at step ``k`` (``None`` at step 0)."""
        k = self.step if k is None else k
        return self.processed[k - 1] if 0 < k <= len(self.processed) else None

    def grads_at(self, k: int) -> dict[str, float]:
        """Every node's grad, by name, after ``k`` backward rules have run."""
        if not self.snapshots:
            return {}
        snap = self.snapshots[min(k, len(self.snapshots) - 1)]
        return {self.names[id(n)]: snap[id(n)] for n in self.nodes}

    # -- drawing -------------------------------------------------------------------------------

    def show(self, k: int) -> None:
        d = self.drawing
        if self.status is not None or not self.snapshots:
            for n in self.nodes:
                d.set_label(n, graphs.value_label(n, self.names[id(n)], grad="?"))
            self.title.set_text("the backward pass cannot be stepped yet")
            self.message.value = f"<b style='color:#b00'>{self.status}</b>"
            if self.snapshots:  # stopped part-way: still show what ran
                self._paint(min(k, len(self.snapshots) - 1))
            self.view.render()
            return
        self._paint(k)
        self.view.render()

    def _paint(self, k: int) -> None:
        d = self.drawing
        snap = self.snapshots[k]
        before = self.snapshots[k - 1] if k > 0 else {}
        current = self.current_node(k)
        received = []
        for n in self.nodes:
            d.set_label(n, graphs.value_label(n, self.names[id(n)], grad=snap[id(n)]))
            leaf = not graphs.value_parents(n)
            if n is current:
                d.set_face(n, graphs.FACE_CURRENT, 2.5)
            elif k > 0 and snap[id(n)] != before.get(id(n)):
                d.set_face(n, graphs.FACE_RECEIVED, 1.5)
                received.append(n)
            else:
                d.set_face(n, graphs.FACE_LEAF if leaf else graphs.FACE, 1.0)
        total = len(self.processed)
        if self.status is None and k == 0:
            self.title.set_text(f"step 0 of {total}: the output's adjoint is 1, every other grad is 0")
            self.message.value = "Press play or move the slider: each step runs one node's backward rule."
            return
        if current is None:
            return
        name = self.names[id(current)]
        op = getattr(current, "_op", "") or "leaf"
        if received:
            parts = [f"{self.names[id(p)]}: {before.get(id(p), 0.0):.4g} &rarr; {snap[id(p)]:.4g}" for p in received]
            what = "its parents' adjoints grow: " + "; ".join(parts)
        elif graphs.value_parents(current):
            what = "no adjoint changed (a zero local derivative, or a rule that does nothing yet)"
        else:
            what = "a leaf: nothing to pass on"
        self.title.set_text(f"step {k} of {total}: backward rule of {name} [{op}], adjoint {snap[id(current)]:.4g}")
        if self.status is None:
            self.message.value = f"{name} [{op}]: {what}."


def backward_stepper(root, topological_order: Callable | None, names: dict | None = None) -> BackwardStepper:
    """Display-ready stepper: ``display(backward_stepper(y, topological_order, {x1: "x1"}).widget)``."""
    return BackwardStepper(root, topological_order, names)
