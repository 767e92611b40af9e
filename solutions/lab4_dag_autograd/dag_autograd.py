# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 4 — Reverse-mode autograd on a DAG, and what `torch.autograd` does
#
# In this lab you build a small automatic-differentiation engine for scalars, train a network with
# it, then look at the real one.
#
# 1. **A program as a graph.** A `Value` engine: you write the local backward rule of every
#    primitive (`+`, `*`, `**`, `exp`, `log`, `sin`, `cos`, `tanh`, `relu`).
# 2. **An order for the sweep.** An iterative `topological_order`, which a chain 100,000 deep
#    does not break.
# 3. **The reverse sweep.** `Value.backward`; the reverse-mode table of
#    $y = \ln x_1 + x_1 x_2 - \sin x_2$ at $(2, 5)$ rebuilt by your engine; a widget that steps through
#    the sweep; a prediction to check (`predicted_adjoint`).
# 4. **The engine learns.** micrograd's `Neuron`, `Layer` and `MLP` on your `Value`, trained on the
#    two moons; what forgetting `zero_grad` does; the logistic-regression graph of the
#    computation-graph lecture, and why lab 5 writes `Log1pExp`.
# 5. **Forward mode.** Dual numbers carry a derivative along with each value; one pass gives one
#    directional derivative. You measure what that costs when there are many inputs.
# 6. **A tensor DAG with weight sharing.** Fleuret's network where `w1` is used twice, its
#    gradient written by hand and checked against `torch.autograd`; a graph that depends on the data.
# 7. **`torch.autograd` at work:** `requires_grad`, leaves, `.grad` accumulation, `zero_grad`,
#    gradients of a sum of mini-batch losses, `autograd.grad`, `detach`, and in-place operations.
# 8. **Bug hunt.** `check_topological_order`: a check that tells right topological orders from wrong ones.
# 9. **Two questions** answered in words.
#
# The lectures behind it (full references at the end):
#
# * François Fleuret, *Deep Learning #3 – MLP, backprop, autograd* (IfI Summer School 2018 on Machine
#   Learning), "Fleuret's lecture" below: the DAG with weight sharing, autograd's mechanics,
#   accumulation, `detach` and in-place operations, the data-dependent graph;
# * *Applied Deep Learning: Training Neural Networks*, "the Applied Deep Learning lecture": a program as
#   primitives $x_i = f_i(x_{\pi(i)})$ with parents $\pi(i)$ and the reverse sweep
#   $\bar x_i = \sum_{j : i \in \pi(j)} \bar x_j \, \partial x_j / \partial x_i$;
# * the recitation of Volkan Cevher's *Mathematics of Data* (EPFL), "the Mathematics of Data
#   recitation": the reverse-mode adjoint table (after Baydin et al.) and the cost of backpropagation;
# * the lecture on computation graphs that starts from *Neural Network View of a Linear Classifier*
#   (figures after Stanford's CS 231n), "the computation-graph lecture": "addition distributes,
#   multiplication switches, max routes", forward mode and its cost, the logistic-regression graph;
# * Rémy Sun, *Lecture 9: Backpropagation* (Optimization for data sciences, Université Côte d'Azur),
#   for the chain rule on a graph.
#
# Only the exercise cells are graded: put any helper function you write inside the exercise's cell.

# %%
import math
import random
import time

import matplotlib.pyplot as plt
import torch
from backproplab import bug_hunt_lab4, checks, data, env, graphs, moons, needs, nn_checks, widgets
from IPython.display import display

# %%
env.check_environment()


# %% [markdown]
# ## 1. A program as a graph of primitive operations
#
# Label the inputs $x_1, \dots, x_n$ and every intermediate result $x_{n+1}, \dots, x_N$. Each
# result comes from one primitive $f_i$ applied to its parents $\pi(i)$:
# $x_i = f_i(x_{\pi(i)})$. The forward pass runs $i = n+1, \dots, N$. For the backward pass write
# $\bar x_i = \partial x_N / \partial x_i$ (the *adjoint* of $x_i$). Then $\bar x_N = 1$, and the
# multidimensional chain rule gives, for $i = N-1, \dots, 1$,
#
# $$\bar x_i = \sum_{j \,:\, i \in \pi(j)} \bar x_j \, \frac{\partial x_j}{\partial x_i}.$$
#
# Turn the sum around: instead of *collecting* from all the children of $x_i$, let every node $j$,
# once its adjoint is final, *push* $\bar x_j \, \partial x_j / \partial x_i$ into each of its
# parents. A parent used by several children receives several pushes, and they **add up**.
#
# A `Value` holds one scalar: `data`, its adjoint `grad` (0.0 at the start), the tuple `_prev` of
# the `Value`s it was computed from (`()` for a leaf; repeats allowed, `a + a` has `_prev = (a, a)`),
# a short `_op` string, and a closure `_backward` that does the push for that one node. The forward
# part of every operation is written for you. Yours is the body of each `_backward`:
# add this node's `out.grad` times the local derivative into each parent's `grad`, **with `+=`**.
# For example, `out = a * b` pushes `b.data * out.grad` into `a` and `a.data * out.grad` into `b`
# ("multiplication switches"), and `out = a + b` pushes `out.grad` unchanged into both
# ("addition distributes").
#
# `-`, `/`, unary minus and the reflected forms (`2 + a`, `2 / a`, ...) are built from the
# primitives, as in micrograd, so they need no rule of their own. Finally `backward()` runs the
# sweep: it needs an order in which every node comes after all its parents, which you write in
# part 2 as `topological_order(root)`; `backward()` calls it.

# %% deletable=false nbgrader={"grade": false, "grade_id": "Value", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Value:
    """A scalar node: data, grad = d(output)/d(self), _prev = the operands, _op = the operation."""

    def __init__(self, data, _prev=(), _op=""):
        self.data = float(data)
        self.grad = 0.0
        self._prev = tuple(_prev)
        self._op = _op
        self._backward = lambda: None  # a leaf has nothing to pass on

    def __repr__(self):
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    @staticmethod
    def _lift(x):
        return x if isinstance(x, Value) else Value(x)

    # ---- primitive operations: the forward is given, the backward rule is yours ----

    def __add__(self, other):
        """out = self + other"""
        other = Value._lift(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += out.grad
            other.grad += out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def __mul__(self, other):
        """out = self * other"""
        other = Value._lift(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def __pow__(self, k):
        """out = self ** k, for a plain number k"""
        if not isinstance(k, (int, float)):
            raise TypeError("only a plain number exponent is supported")
        out = Value(self.data**k, (self,), f"**{k:g}")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += k * self.data ** (k - 1) * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def exp(self):
        """out = exp(self)"""
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += out.data * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def log(self):
        """out = ln(self)"""
        out = Value(math.log(self.data), (self,), "log")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += out.grad / self.data
            ### END SOLUTION

        out._backward = _backward
        return out

    def sin(self):
        """out = sin(self)"""
        out = Value(math.sin(self.data), (self,), "sin")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += math.cos(self.data) * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def cos(self):
        """out = cos(self)"""
        out = Value(math.cos(self.data), (self,), "cos")

        def _backward():
            ### BEGIN SOLUTION
            self.grad -= math.sin(self.data) * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def tanh(self):
        """out = tanh(self)"""
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():
            ### BEGIN SOLUTION
            self.grad += (1.0 - out.data * out.data) * out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    def relu(self):
        """out = max(0, self)"""
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward():
            ### BEGIN SOLUTION
            if self.data > 0:  # the max routes the gradient to the branch it chose
                self.grad += out.grad
            ### END SOLUTION

        out._backward = _backward
        return out

    # ---- derived operations: built from the primitives, no rule of their own ----

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-Value._lift(other))

    def __truediv__(self, other):
        return self * Value._lift(other) ** -1

    def __radd__(self, other):  # other + self, when other is a plain number
        return self + other

    def __rsub__(self, other):
        return Value._lift(other) + (-self)

    def __rmul__(self, other):
        return self * other

    def __rtruediv__(self, other):
        return Value._lift(other) * self**-1

    # ---- the reverse sweep ----

    def backward(self):
        """Non-leaf grads to 0, self.grad += 1, then each node's _backward in reverse topological order."""
        ### BEGIN SOLUTION
        order = topological_order(self)
        for node in order:
            if node._prev:  # leaves keep what they hold: they accumulate, like torch leaves
                node.grad = 0.0
        self.grad += 1.0
        for node in reversed(order):
            node._backward()
        ### END SOLUTION


# %% [markdown]
# The next cells grade each rule on its own. They compare the forward value and both gradients
# with `torch` in float64. Each gradient is first taken with your `backward()`; if that is not
# written yet, or gives a wrong answer, the check runs just this operation's `_backward` by itself.
# So a rule that is right earns its points even before the sweep works. The leaves start
# with `grad = 0.25`, so a rule that *assigns* (`=`) instead of *adding* (`+=`) is caught.

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_add", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The backward rule of `+`: both operands receive the output's gradient, added to what they hold.
graphs.check_value_op(Value, "a + b", lambda a, b: a + b, lambda a, b: a + b, [2.0, -3.0])
graphs.check_value_op(Value, "a + a", lambda a: a + a, lambda a: a + a, [1.5])
graphs.check_value_op(Value, "a + 4", lambda a: a + 4, lambda a: a + 4, [0.5])
print("`+` passes the output's gradient to both operands.")
### BEGIN HIDDEN TESTS
_rng = random.Random(4101)
_plus = lambda a, b: a + b  # noqa: E731
for _ in range(5):
    graphs.check_value_op(Value, "a + b", _plus, _plus, [_rng.uniform(-5, 5), _rng.uniform(-5, 5)])
graphs.check_value_op(Value, "(a + b) + a", lambda a, b: (a + b) + a, lambda a, b: (a + b) + a, [0.3, -0.7])
graphs.check_value_op(Value, "a + a + a", lambda a: a + a + a, lambda a: a + a + a, [2.0])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_mul", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The backward rule of `*`: each operand receives the output's gradient times the *other* operand.
graphs.check_value_op(Value, "a * b", lambda a, b: a * b, lambda a, b: a * b, [2.0, -3.0])
graphs.check_value_op(Value, "b * b", lambda b: b * b, lambda b: b * b, [1.5], names=["b"])
graphs.check_value_op(Value, "a * -2.5", lambda a: a * -2.5, lambda a: a * -2.5, [0.5])
print("`*` switches: each operand gets the gradient times the other one.")
### BEGIN HIDDEN TESTS
_rng = random.Random(4102)
_times = lambda a, b: a * b  # noqa: E731
for _ in range(5):
    graphs.check_value_op(Value, "a * b", _times, _times, [_rng.uniform(-5, 5), _rng.uniform(-5, 5)])
graphs.check_value_op(Value, "a * 0", lambda a: a * 0, lambda a: a * 0, [3.0])
graphs.check_value_op(Value, "(a * b) * a", lambda a, b: (a * b) * a, lambda a, b: (a * b) * a, [1.3, -0.4])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_pow", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The backward rule of `** k` for a number k, including at 0 where k * x ** (k - 1) must not divide by x.
graphs.check_value_op(Value, "a ** 3", lambda a: a**3, lambda a: a**3, [1.7])
graphs.check_value_op(Value, "a ** -1", lambda a: a**-1, lambda a: a**-1, [0.8])
graphs.check_value_op(Value, "a ** 0.5", lambda a: a**0.5, lambda a: a**0.5, [2.3])
graphs.check_value_op(Value, "a ** 2", lambda a: a**2, lambda a: a**2, [0.0])
print("`**` has the right derivative, at 0 too.")
### BEGIN HIDDEN TESTS
graphs.check_value_op(Value, "a ** 3", lambda a: a**3, lambda a: a**3, [0.0])
graphs.check_value_op(Value, "a ** 1", lambda a: a**1, lambda a: a**1, [0.0])
graphs.check_value_op(Value, "a ** 2", lambda a: a**2, lambda a: a**2, [-1.3])
graphs.check_value_op(Value, "a ** -2", lambda a: a**-2, lambda a: a**-2, [-0.6])
_rng = random.Random(4103)
for _ in range(5):
    _k = _rng.choice([-1.5, -0.5, 0.5, 2.5, 3])
    graphs.check_value_op(Value, f"a ** {_k}", lambda a, _k=_k: a**_k, lambda a, _k=_k: a**_k, [_rng.uniform(0.2, 3)])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_exp_log", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The backward rules of exp and log.
graphs.check_value_op(Value, "a.exp()", lambda a: a.exp(), lambda a: a.exp(), [0.7])
graphs.check_value_op(Value, "a.exp()", lambda a: a.exp(), lambda a: a.exp(), [0.0])
graphs.check_value_op(Value, "a.log()", lambda a: a.log(), lambda a: a.log(), [2.5])
print("exp and log have the right derivatives.")
### BEGIN HIDDEN TESTS
_rng = random.Random(4104)
for _ in range(4):
    graphs.check_value_op(Value, "a.exp()", lambda a: a.exp(), lambda a: a.exp(), [_rng.uniform(-4, 4)])
    graphs.check_value_op(Value, "a.log()", lambda a: a.log(), lambda a: a.log(), [_rng.uniform(0.05, 9)])
graphs.check_value_op(Value, "a.log()", lambda a: a.log(), lambda a: a.log(), [1.0])
graphs.check_value_op(Value, "(a * b).log()", lambda a, b: (a * b).log(), lambda a, b: (a * b).log(), [0.5, 3.0])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_trig", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The backward rules of sin and cos.
graphs.check_value_op(Value, "a.sin()", lambda a: a.sin(), lambda a: a.sin(), [5.0])
graphs.check_value_op(Value, "a.cos()", lambda a: a.cos(), lambda a: a.cos(), [5.0])
graphs.check_value_op(Value, "a.cos()", lambda a: a.cos(), lambda a: a.cos(), [0.0])
print("sin and cos have the right derivatives.")
### BEGIN HIDDEN TESTS
_rng = random.Random(4105)
for _ in range(4):
    graphs.check_value_op(Value, "a.sin()", lambda a: a.sin(), lambda a: a.sin(), [_rng.uniform(-6, 6)])
    graphs.check_value_op(Value, "a.cos()", lambda a: a.cos(), lambda a: a.cos(), [_rng.uniform(-6, 6)])
graphs.check_value_op(Value, "a.sin()", lambda a: a.sin(), lambda a: a.sin(), [0.0])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_tanh_relu", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# The backward rules of tanh (1 - tanh^2, from the output) and relu (gradient only where x > 0, none at 0).
graphs.check_value_op(Value, "a.tanh()", lambda a: a.tanh(), lambda a: a.tanh(), [0.7])
graphs.check_value_op(Value, "a.tanh()", lambda a: a.tanh(), lambda a: a.tanh(), [0.0])
graphs.check_value_op(Value, "a.relu()", lambda a: a.relu(), lambda a: a.relu(), [1.3])
graphs.check_value_op(Value, "a.relu()", lambda a: a.relu(), lambda a: a.relu(), [-0.4])
graphs.check_value_op(Value, "a.relu()", lambda a: a.relu(), lambda a: a.relu(), [0.0])
print("tanh and relu have the right derivatives (relu passes nothing at 0, as torch does).")
### BEGIN HIDDEN TESTS
_rng = random.Random(4106)
for _ in range(4):
    graphs.check_value_op(Value, "a.tanh()", lambda a: a.tanh(), lambda a: a.tanh(), [_rng.uniform(-3, 3)])
    graphs.check_value_op(Value, "a.relu()", lambda a: a.relu(), lambda a: a.relu(), [_rng.uniform(-3, 3)])
graphs.check_value_op(Value, "a.tanh()", lambda a: a.tanh(), lambda a: a.tanh(), [20.0])
graphs.check_value_op(Value, "a.tanh()", lambda a: a.tanh(), lambda a: a.tanh(), [-1.2])
graphs.check_value_op(Value, "(a * b).relu()", lambda a, b: (a * b).relu(), lambda a, b: (a * b).relu(), [-2.0, -1.5])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_operators", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# The derived and reflected operators: -a, a - b, a / b, and 2 + a, 2 - a, 2 * a, 2 / a with a number on the left.
graphs.check_value_op(Value, "-a", lambda a: -a, lambda a: -a, [1.5])
graphs.check_value_op(Value, "a - b", lambda a, b: a - b, lambda a, b: a - b, [2.0, 3.5])
graphs.check_value_op(Value, "a / b", lambda a, b: a / b, lambda a, b: a / b, [2.0, -4.0])
graphs.check_value_op(Value, "2 + a", lambda a: 2 + a, lambda a: 2 + a, [0.5])
graphs.check_value_op(Value, "2 - a", lambda a: 2 - a, lambda a: 2 - a, [0.5])
graphs.check_value_op(Value, "2 * a", lambda a: 2 * a, lambda a: 2 * a, [0.5])
graphs.check_value_op(Value, "2 / a", lambda a: 2 / a, lambda a: 2 / a, [0.5])
print("-, /, unary minus and the reflected forms give the right values and gradients.")
### BEGIN HIDDEN TESTS
graphs.check_value_op(Value, "a - 2", lambda a: a - 2, lambda a: a - 2, [0.5])
graphs.check_value_op(Value, "a / 2", lambda a: a / 2, lambda a: a / 2, [0.5])
graphs.check_value_op(Value, "a - a", lambda a: a - a, lambda a: a - a, [1.25])
graphs.check_value_op(Value, "a / a", lambda a: a / a, lambda a: a / a, [1.25])
graphs.check_value_op(Value, "1.5 - a * b / (a + 2)", lambda a, b: 1.5 - a * b / (a + 2),
                      lambda a, b: 1.5 - a * b / (a + 2), [0.7, -1.1])
### END HIDDEN TESTS

# %% [markdown]
# ## 2. An order for the sweep
#
# The sweep may process a node only once its adjoint is final, that is, after every node that uses
# it. So it needs the nodes in an order where each node comes after all of its parents (a
# *topological order*); the sweep then walks that list backwards.
#
# The short way to write it is a recursive depth-first search: visit the parents, then append the
# node. micrograd does exactly that, and it breaks on deep graphs: every level of the graph is a
# level of Python recursion, and Python stops at about a thousand. A recurrent network unrolled over
# a long sequence is a deep graph. Write `topological_order` **without recursion**, with a list as an
# explicit stack. Keep a set of nodes already seen (compare nodes by identity, `id(node)` or the node
# itself), so that a node reached along two paths is listed once.

# %% deletable=false nbgrader={"grade": false, "grade_id": "topological_order", "locked": false, "schema_version": 3, "solution": true, "task": false}
def topological_order(root):
    """Every node reachable from root through _prev, each once, parents before children, root last."""
    ### BEGIN SOLUTION
    order = []
    seen = {id(root)}
    stack = [(root, iter(root._prev))]  # each entry: a node and the parents still to visit
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append((parent, iter(parent._prev)))
                break
        else:  # all parents are listed: the node can follow them
            stack.pop()
            order.append(node)
    return order
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_topological_order", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# topological_order on small graphs: every reachable node exactly once, each after its parents, the root last.
# The nodes are bare objects with a `_prev` tuple (graphs.Node), built by the test, so this check needs nothing else
# from you. A graph is described by its nodes' names and, for each node, the positions of its parents.
def _graph(*nodes):
    """nodes: (name, parent names...) in an order that puts parents first; returns (names, parents)."""
    names = [n[0] for n in nodes]
    return names, [[names.index(p) for p in n[1:]] for n in nodes]


def _shown(names, ks):
    return "[" + ", ".join(names[k] if k >= 0 else "<not a node of the graph>" for k in ks) + "]"


def _check_order(names, parents, what, root=-1):
    root = root % len(parents)
    graph = graphs.build_graph(parents, names)
    try:
        order = checks.call(graphs.order_positions, topological_order, graph, root, name="topological_order")
    except AssertionError as exc:
        if isinstance(exc.__cause__, RecursionError):
            raise AssertionError(f"{what}: topological_order hit Python's recursion limit: use a list as an "
                                 "explicit stack instead of recursive calls (diagnosis: recursion)") from None
        raise
    if isinstance(order, str):  # the name of the type it returned
        raise AssertionError(f"{what}: expected a list of nodes, got {order} (diagnosis: not_a_list)")
    reachable, todo = {root}, [root]
    while todo:
        for p in parents[todo.pop()]:
            if p not in reachable:
                reachable.add(p)
                todo.append(p)
    nodes = sorted(reachable)
    if len(set(order)) != len(order):
        twice = sorted({names[k] if k >= 0 else "?" for k in order if order.count(k) > 1})[:5] \
            if len(order) < 5000 else "some nodes"
        raise AssertionError(f"{what}: nodes listed more than once ({twice}); a node reached along two paths "
                             "must be listed once: remember which nodes you have seen (diagnosis: visited_twice)")
    listed = set(order)
    missing = [k for k in nodes if k not in listed]
    if missing:
        raise AssertionError(f"{what}: {len(missing)} reachable nodes are missing, e.g. {_shown(names, missing[:3])} "
                             "(diagnosis: missing_nodes)")
    if len(order) != len(nodes):
        raise AssertionError(f"{what}: {len(order)} nodes returned, but only {len(nodes)} are reachable from the root "
                             "(diagnosis: extra_nodes)")
    if order[-1] != root:
        raise AssertionError(f"{what}: the last node must be the root, got {_shown(names, order[-1:])[1:-1]} "
                             "(diagnosis: order)")
    where = {k: i for i, k in enumerate(order)}
    for n in order:
        for p in parents[n]:
            if where[p] > where[n]:
                raise AssertionError(f"{what}: {names[n]} comes before its parent {names[p]}; every node must come "
                                     "after all of its parents (diagnosis: order)")


_check_order(*_graph(("a",)), "a single leaf")
_check_order(*_graph(("a",), ("a+a", "a", "a")), "a + a")
_check_order(*_graph(("x",), ("b", "x"), ("c", "x"), ("d", "b", "c")), "the diamond d(b(x), c(x))")
_check_order(*_graph(("x1",), ("x2",), ("v1=ln x1", "x1"), ("v2=x1*x2", "x1", "x2"), ("v3=sin x2", "x2"),
                     ("v4=v1+v2", "v1=ln x1", "v2=x1*x2"), ("v5=v4-v3", "v4=v1+v2", "v3=sin x2")),
             "the graph of ln(x1) + x1*x2 - sin(x2) from the reverse-mode table")
print("topological_order lists each node once, after its parents, with the root last.")
### BEGIN HIDDEN TESTS
# A ladder of 12 diamonds: 4096 paths from the top to the bottom, 37 nodes.
_nodes = [("l0",)]
for _i in range(12):
    _nodes += [(f"l{_i}a", _nodes[-1][0]), (f"l{_i}b", _nodes[-1][0]), (f"l{_i + 1}", f"l{_i}a", f"l{_i}b")]
_check_order(*_graph(*_nodes), "a ladder of 12 diamonds")
# Random DAGs with repeated parents; unreachable nodes must not appear.
_rng = random.Random(4107)
for _t in range(30):
    _names = [f"in{_i}" for _i in range(_rng.randint(1, 4))]
    _parents = [[] for _ in _names]
    for _i in range(_rng.randint(0, 30)):
        _k = _rng.randint(1, 3)
        _parents.append([_rng.randrange(len(_names)) for _ in range(_k)])
        _names.append(f"n{_i}")
    _check_order(_names, _parents, f"random graph {_t}")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_topological_order_deep", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# topological_order on a chain 100,000 nodes deep: it must not recurse.
def _deep_order(parents):
    """topological_order from the last node of the graph (built by the test): the nodes' positions, in its order."""
    graph = graphs.build_graph(parents)
    try:
        return checks.call(graphs.order_positions, topological_order, graph, name="topological_order")
    except AssertionError as exc:
        if isinstance(exc.__cause__, RecursionError):
            raise AssertionError("a chain 100,000 deep hit Python's recursion limit: topological_order must use an "
                                 "explicit stack, not recursive calls (diagnosis: recursion)") from None
        raise


with graphs.paused_gc():  # building 100,000 objects: keep Python's cycle collector out of the timing
    _chain = [[]] + [[_i] for _i in range(100_000)]
    _order = _deep_order(_chain)
if not isinstance(_order, list) or len(_order) != len(_chain):
    raise AssertionError(f"a chain of {len(_chain)} nodes: got {len(_order) if isinstance(_order, list) else _order} "
                         "nodes back (diagnosis: missing_nodes)")
if _order != list(range(len(_chain))):
    raise AssertionError("a chain: the nodes must come in chain order, the leaf first and the root last (diagnosis: order)")
del _chain, _order
print("topological_order handles a chain 100,000 nodes deep.")
### BEGIN HIDDEN TESTS
# Deep and shared: every node of a 40,000-deep chain also uses the leaf.
with graphs.paused_gc():
    _chain = [[]] + [[_i, 0] for _i in range(40_000)]
    _order = _deep_order(_chain)
if not isinstance(_order, list) or len(_order) != len(_chain) or len(set(_order)) != len(_chain) \
        or _order[0] != 0 or _order[-1] != len(_chain) - 1:
    raise AssertionError("a 40,000-deep chain whose nodes all share the leaf: each node must appear once, "
                         "the leaf first and the root last (diagnosis: order)")
del _chain, _order
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The reverse sweep
#
# `Value.backward()` (in the `Value` cell above) does what the Applied Deep Learning lecture's
# algorithm says, with two
# details that make it behave like `torch`:
#
# 1. Get the order with `topological_order(self)`.
# 2. Set the `grad` of every node that has parents to 0.0. Intermediate results start afresh at
#    each call. **Leaves keep their `grad`**: a second `backward()` adds to it, as `torch` leaf
#    tensors do (that is how gradients over several mini-batches are summed, part 7).
# 3. Add 1.0 to `self.grad` ($\bar x_N = 1$).
# 4. Walk the order backwards and call each node's `_backward()`.
#
# The next grade cells test the sweep on its own. They build graphs of your `Value` objects whose
# `_backward` rules are set by the test itself (`graphs.rule_node`), so a mistake in an operator
# rule does not cost points here. Your `backward()` only has to call each node's `_backward()`, as
# micrograd does.

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_backward_shared", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Value.backward on shared subexpressions: gradients arriving along several paths add up.
_a = Value(3.0)
_s = graphs.rule_node(Value, 6.0, [_a, _a], [1.0, 1.0], "+")  # s = a + a
graphs.call_backward(_s, "(a + a).backward()")
graphs.assert_grads({"a": _a.grad, "a + a": _s.grad}, {"a": 2.0, "a + a": 1.0}, "a + a")
_b = Value(-1.5)
_p = graphs.rule_node(Value, 2.25, [_b, _b], [-1.5, -1.5], "*")  # p = b * b, each slot's local derivative is b
graphs.call_backward(_p, "(b * b).backward()")
graphs.assert_grads({"b": _b.grad}, {"b": -3.0}, "b * b (the gradient is 2 b)")
# A diamond: m = x + 1 feeds y1 = 2 m and y2 = m ** 2, and z = y1 * y2 = 2 m ** 3, so dz/dx = dz/dm = 6 m ** 2.
_x = Value(1.5)
_m = graphs.rule_node(Value, 2.5, [_x], [1.0], "+1")
_y1 = graphs.rule_node(Value, 5.0, [_m], [2.0], "*2")
_y2 = graphs.rule_node(Value, 6.25, [_m], [5.0], "**2")
_z = graphs.rule_node(Value, 31.25, [_y1, _y2], [6.25, 5.0], "*")
graphs.call_backward(_z, "z.backward() on the diamond")
if isinstance(_x.grad, (int, float)) and _x.grad > 37.5 and not checks.close(_x.grad, 37.5):
    raise AssertionError(f"the diamond: x.grad is {_x.grad}, more than the right 37.5: m's rule ran more than once "
                         "(once per path); each node must appear once in the order, and be processed once, after "
                         "every node that uses it (diagnosis: visited_twice)")
graphs.assert_grads({"x": _x.grad, "m": _m.grad, "y1": _y1.grad, "y2": _y2.grad},
                    {"x": 37.5, "m": 37.5, "y1": 6.25, "y2": 5.0}, "the diamond z = y1 * y2 with y1 = 2 m, y2 = m ** 2")
print("Gradients from several paths add up, and each node is processed once.")
### BEGIN HIDDEN TESTS
# A ladder of diamonds: a node processed twice, or too early, multiplies or loses paths.
_x = Value(0.5)
_top = _x
for _i in range(10):
    _l = graphs.rule_node(Value, 0.0, [_top], [1.5], "l")
    _r = graphs.rule_node(Value, 0.0, [_top], [-0.5], "r")
    _top = graphs.rule_node(Value, 0.0, [_l, _r], [1.0, 1.0], "+")
graphs.call_backward(_top, "backward() on a ladder of 10 diamonds")
graphs.assert_grads({"x": _x.grad}, {"x": 1.0}, "a ladder of 10 diamonds (each level multiplies by 1.5 - 0.5 = 1)")
# The same node used three times by one operation, and a root that is itself a leaf.
_a = Value(2.0)
_t = graphs.rule_node(Value, 6.0, [_a, _a, _a], [1.0, 2.0, 3.0], "f")
graphs.call_backward(_t, "f(a, a, a).backward()")
graphs.assert_grads({"a": _a.grad}, {"a": 6.0}, "f(a, a, a) with local derivatives 1, 2, 3")
_leaf = Value(4.0)
graphs.call_backward(_leaf, "backward() called on a leaf")
graphs.assert_grads({"leaf": _leaf.grad}, {"leaf": 1.0}, "a leaf's own backward() (d leaf / d leaf = 1)")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_backward_deep", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Value.backward on a chain 100,000 nodes deep: no recursion anywhere, every node visited once.
with graphs.paused_gc():  # every node is in a reference cycle (its closure): keep the cycle collector out
    _leaf = Value(1.0)
    _node = graphs.rule_chain(Value, _leaf, 100_000, [[-1.0], [1.0]])  # rule_node 100,000 times, in one go
    graphs.call_backward(_node, "backward() on a chain 100,000 deep")
graphs.assert_grads({"leaf": _leaf.grad, "root": _node.grad}, {"leaf": 1.0, "root": 1.0},
                    "a chain of 100,000 nodes whose local derivatives are -1, +1, -1, ... (product 1)")
del _node, _leaf
print("backward() handles a chain 100,000 nodes deep.")
### BEGIN HIDDEN TESTS
# Deep and shared: every node of the chain also uses the leaf directly.
with graphs.paused_gc():
    _leaf = Value(1.0)
    _node = graphs.rule_chain(Value, _leaf, 40_000, [[1.0, 2.5e-5]], also=[_leaf])
    graphs.call_backward(_node, "backward() on a deep chain that shares its leaf")
# the leaf's grad is a sum of 40,000 terms added one after another: 40,000 dependent roundings
graphs.assert_grads({"leaf": _leaf.grad}, {"leaf": 2.0}, "a 40,000-deep chain whose nodes also use the leaf (1 + 4e4 * 2.5e-5)",
                    steps=40_000)
del _node, _leaf
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_backward_repeated", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Repeated backward() calls: leaves accumulate like torch leaves; intermediate grads start again from 0.
_x, _y = Value(2.0), Value(3.0)
_u = graphs.rule_node(Value, 6.0, [_x, _y], [3.0, 2.0], "*")  # u = x * y
_v = graphs.rule_node(Value, 8.0, [_u, _x], [1.0, 1.0], "+")  # v = u + x: dv/dx = y + 1 = 4, dv/dy = x = 2
graphs.call_backward(_v, "the first v.backward()")
graphs.assert_grads({"x": _x.grad, "y": _y.grad, "u": _u.grad, "v": _v.grad},
                    {"x": 4.0, "y": 2.0, "u": 1.0, "v": 1.0}, "v = x * y + x after one backward()")
graphs.call_backward(_v, "the second v.backward()")
if _u.grad != 1.0 or _v.grad != 1.0:
    raise AssertionError(f"after a second backward(), u.grad = {_u.grad} and v.grad = {_v.grad}, expected 1.0 and 1.0: "
                         "set the grad of every node that has parents to 0 before the sweep "
                         "(diagnosis: nonleaf_not_reset)")
if _x.grad == 4.0 and _y.grad == 2.0:
    raise AssertionError("after a second backward(), the leaves hold the gradient of one call only (x.grad = 4): "
                         "leaves must accumulate across calls, like torch leaf tensors; reset only the nodes "
                         "that have parents (diagnosis: leaf_reset)")
graphs.assert_grads({"x": _x.grad, "y": _y.grad}, {"x": 8.0, "y": 4.0}, "the leaves after two backward() calls")
_x.grad = _y.grad = 0.0  # what zero_grad does
graphs.call_backward(_v, "backward() after zeroing the leaves")
graphs.assert_grads({"x": _x.grad, "y": _y.grad}, {"x": 4.0, "y": 2.0}, "the leaves after zeroing and one more call")
print("Leaves accumulate across calls, intermediate nodes start again from 0.")
### BEGIN HIDDEN TESTS
# Two losses sharing leaves: the leaves end up with the gradient of the sum.
_w = Value(0.5)
_l1 = graphs.rule_node(Value, 0.25, [_w, _w], [0.5, 0.5], "*")  # w * w
_l2 = graphs.rule_node(Value, 1.5, [_w], [3.0], "*3")         # 3 w
graphs.call_backward(_l1, "the first loss's backward()")
graphs.call_backward(_l2, "the second loss's backward()")
graphs.assert_grads({"w": _w.grad}, {"w": 4.0}, "w after backward() on w*w then on 3w (gradient of the sum, 2w + 3)")
# Five calls, and a shared intermediate node used twice.
_x = Value(1.0)
_m = graphs.rule_node(Value, 2.0, [_x], [2.0], "*2")
_r = graphs.rule_node(Value, 4.0, [_m, _m], [1.0, 1.0], "+")
for _k in range(5):
    graphs.call_backward(_r, f"backward() call {_k + 1}")
    if _m.grad != 2.0:
        raise AssertionError(f"after backward() call {_k + 1}, the intermediate node m has grad {_m.grad}, expected 2.0 "
                             "(diagnosis: nonleaf_not_reset)")
graphs.assert_grads({"x": _x.grad}, {"x": 20.0}, "x after five backward() calls (4 each)")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Value_backward_random", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Value.backward on random graphs, compared with torch.autograd in float64 (leaves and intermediate nodes).
def _random_graph_check(leaf_values, recipe):
    """recipe: (op, i, j, c) per node; i, j pick parents among the nodes so far (modulo their number)."""
    vs = graphs.rule_graph(Value, leaf_values, recipe)  # your Value, with the test's local derivatives
    ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in leaf_values]
    for op, i, j, c in recipe:
        ta, tb = ts[i % len(ts)], ts[j % len(ts)]
        if op == "add":
            ts.append(ta + tb)
        elif op == "mul":
            ts.append(ta * tb)
        elif op == "scale":
            ts.append(c * ta)
        else:  # "sin"
            ts.append(torch.sin(ta))
    graphs.call_backward(vs[-1], "backward() on a random graph")
    ref = torch.autograd.grad(ts[-1], ts, allow_unused=True)
    want = {f"x{k}": (0.0 if g is None else float(g)) for k, g in enumerate(ref)}
    want[f"x{len(ts) - 1}"] = 1.0
    got = {f"x{k}": g for k, g in enumerate(graphs.grads_of(vs))}
    graphs.assert_grads(got, want, f"a random graph with {len(leaf_values)} leaves and {len(recipe)} operations "
                        f"{[r[0] for r in recipe]}", steps=len(recipe))  # one rounding per operation of the graph


_random_graph_check([2.0, -1.0], [("mul", 0, 1, 0), ("add", 2, 0, 0), ("sin", 3, 0, 0), ("mul", 4, 2, 0)])
_random_graph_check([0.5], [("add", 0, 0, 0), ("mul", 1, 1, 0), ("add", 2, 1, 0), ("scale", 3, 0, -2.0)])
print("backward() agrees with torch.autograd on these graphs.")
### BEGIN HIDDEN TESTS
_OPS = ["add", "mul", "scale", "sin"]
try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # no Hypothesis in this environment: seeded random graphs instead
    _rng = random.Random(4108)
    for _t in range(30):
        _leaves = [_rng.uniform(-2, 2) for _ in range(_rng.randint(1, 4))]
        _recipe = [(_rng.choice(_OPS), _rng.randrange(10**6), _rng.randrange(10**6), _rng.uniform(-2, 2))
                   for _ in range(_rng.randint(1, 25))]
        _random_graph_check(_leaves, _recipe)
else:
    @settings(max_examples=30, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.floats(-2, 2), min_size=1, max_size=4),
           st.lists(st.tuples(st.sampled_from(_OPS), st.integers(0, 10**6), st.integers(0, 10**6), st.floats(-2, 2)),
                    min_size=1, max_size=25))
    def _property(leaves, recipe):
        _random_graph_check(leaves, recipe)

    _property()
### END HIDDEN TESTS

# %% [markdown]
# ### The reverse-mode table, from your engine
#
# The Mathematics of Data recitation (after Baydin et al.) traces
# $y = f(x_1, x_2) = \ln x_1 + x_1 x_2 - \sin x_2$ at $(2, 5)$: a forward
# primal trace $v_{-1}, \dots, v_5$, then the adjoints $\bar v_i = \partial y / \partial v_i$ in
# reverse, ending with $\partial y / \partial x_1 = 5.5$ and $\partial y / \partial x_2 = 1.716$.
# Here is the same trace computed by your `Value`, beside the recitation's numbers.

# %%
x1, x2 = Value(2.0), Value(5.0)
v1 = x1.log()
v2 = x1 * x2
v3 = x2.sin()
v4 = v1 + v2
y = v4 - v3
trace = [("v-1 = x1", x1, 2.0, 5.5), ("v0 = x2", x2, 5.0, 1.716), ("v1 = ln v-1", v1, 0.693, 1.0),
         ("v2 = v-1 * v0", v2, 10.0, 1.0), ("v3 = sin v0", v3, -0.959, -1.0), ("v4 = v1 + v2", v4, 10.693, 1.0),
         ("v5 = v4 - v3 = y", y, 11.652, 1.0)]
names = {x1: "x1", x2: "x2", v1: "v1", v2: "v2", v3: "v3", v4: "v4", y: "y"}
with needs("Value", "topological_order"):
    y.backward()
    print(f"{'node':18} {'value':>9} {'table':>9} {'adjoint':>9} {'table':>9}")
    for label, node, value_lecture, adjoint_lecture in trace:
        print(f"{label:18} {node.data:9.3f} {value_lecture:9.3f} {node.grad:9.3f} {adjoint_lecture:9.3f}")

# %% [markdown]
# The adjoint of $x_2$ is built in two pieces, one per path: $\bar v_3 \cos v_0 = -0.284$ through
# the sine, plus $\bar v_2 \, v_{-1} = 2$ through the product, which gives $1.716$. The same happens
# for $x_1$: $\bar v_1 / v_{-1} = 0.5$ plus $\bar v_2 \, v_0 = 5$. That is the `+=` at work.
#
# Below is the graph your engine built, drawn from `_prev` and `_op`. Each box shows a node's `data`
# and `grad`. Arrows go from operands to results. `y = v4 - v3` shows up as `v4 + (v3 * -1)`,
# because `-` is derived from `+` and `*`.

# %%
fig, ax = plt.subplots(figsize=(10, 4.2), layout="constrained")
graphs.draw_value_graph(ax, y, names)
ax.set_title("y = ln(x1) + x1 * x2 - sin(x2) at (2, 5): data and grad of every node", fontsize=10)
plt.show()

# %% [markdown]
# ### Watching the sweep, one node at a time
#
# The widget takes your `topological_order` and replays your `_backward` closures one node at a
# time, from `y` back to the leaves. The yellow node is the one being processed. The green nodes
# are its parents, whose adjoints just grew. Watch `x2` receive its two contributions, one per path.

# %%
stepper = widgets.backward_stepper.backward_stepper(y, topological_order, names)
display(stepper.widget)

# %% [markdown]
# ### How gradients flow through the three usual patterns
#
# The computation-graph lecture names three patterns:
#
# * **`+` distributes**: both operands receive the output's gradient unchanged.
# * **`*` switches**: each operand receives the gradient times the *other* operand.
# * **`max` (here `relu`) routes**: only the branch that won receives the gradient. That choice is
#   made in the forward pass, which is why the node has to remember it.

# %%
with needs("Value", "topological_order"):
    a, b = Value(3.0), Value(-2.0)
    for label, out in [("a + b", a + b), ("a * b", a * b), ("relu(a) + relu(b)", a.relu() + b.relu())]:
        a.grad = b.grad = 0.0
        out.backward()
        print(f"{label:18} d/da = {a.grad:5.1f}   d/db = {b.grad:5.1f}")

# %% [markdown]
# ### Predict, then check: an adjoint that arrives along two paths
#
# Take $x = 3$ and $y = -2$, and compute
#
# $$m = x\,y, \qquad n = m + x, \qquad L = n \cdot n \qquad (\text{so } L = (xy + x)^2 = 9).$$
#
# The node to watch is $x$: it feeds both $m$ and $n$. Before running anything, do the reverse
# sweep by hand: $\bar L = 1$, then $\bar n$, then $\bar m$, and finally $\bar x = \partial L / \partial x$,
# which collects one contribution from each use of $x$. Set `predicted_adjoint` to the number you
# find (replace the two lines `# YOUR CODE HERE` and `raise NotImplementedError()` by
# `predicted_adjoint = ...`).

# %% deletable=false nbgrader={"grade": false, "grade_id": "predicted_adjoint", "locked": false, "schema_version": 3, "solution": true, "task": false}
try:
    ### BEGIN SOLUTION
    predicted_adjoint = 6.0
    ### END SOLUTION
except NotImplementedError:
    predicted_adjoint = None  # not predicted yet

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_predicted_adjoint", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# predicted_adjoint against dL/dx for L = (x y + x)^2 at x = 3, y = -2, computed here with torch (float64).
_x = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
_n = _x * torch.tensor(-2.0, dtype=torch.float64) + _x
(_true,) = torch.autograd.grad(_n * _n, _x)
if predicted_adjoint is None:
    raise AssertionError("predicted_adjoint is not set yet: write your number in the cell above (diagnosis: not_implemented)")
try:
    _guess = float(predicted_adjoint)
except (TypeError, ValueError):
    raise AssertionError(f"predicted_adjoint must be a number, got {predicted_adjoint!r} (diagnosis: wrong_return)") from None
if not checks.close(_guess, _true.item()):
    raise AssertionError(f"you predicted dL/dx = {_guess:g}; the reverse sweep gives {_true.item():g}. Run the cells "
                         "below to see where the two contributions come from (diagnosis: prediction)")
print(f"Right: dL/dx = {_true.item():g}.")

# %% [markdown]
# The experiment: the same computation with your engine, then the two contributions that reach $x$.

# %%
with needs("Value", "topological_order"):
    x_p, y_p = Value(3.0), Value(-2.0)
    m_p = x_p * y_p
    n_p = m_p + x_p
    loss_p = n_p * n_p
    loss_p.backward()
    through_m, direct = m_p.grad * y_p.data, n_p.grad * 1.0
    print(f"L = {loss_p.data:g};  adjoints: n = {n_p.grad:g}, m = {m_p.grad:g}, x = {x_p.grad:g}")
    print(f"x receives {through_m:g} through m = x y (m's adjoint times y) and {direct:g} directly through "
          f"n = m + x: {through_m:g} + ({direct:g}) = {through_m + direct:g}")

# %%
with needs("predicted_adjoint", "Value", "topological_order"):
    if predicted_adjoint is None:
        print("You have not written predicted_adjoint yet.")
    else:
        verdict = "right" if math.isclose(float(predicted_adjoint), x_p.grad, abs_tol=1e-9) else "not quite"
        print(f"your prediction: {float(predicted_adjoint):g}   outcome: {x_p.grad:g}   ({verdict})")
        if not math.isclose(float(predicted_adjoint), x_p.grad, abs_tol=1e-9):
            print(f"keeping only the path through m gives {through_m:g}, only the direct one {direct:g}: "
                  "a node's adjoint is the sum over all of its uses.")


# %% [markdown]
# ### Deep graphs
#
# A recursive sort would stop with `RecursionError` long before this chain's end. Yours walks it:

# %%
with needs("Value", "topological_order"), graphs.paused_gc():
    # graphs.paused_gc(): every node is in a reference cycle (its _backward closure refers to it), and
    # Python's cycle collector would otherwise scan the growing graph again and again.
    start = time.perf_counter()
    leaf = Value(0.5)
    node = leaf
    for _ in range(100_000):
        node = node + 0.5
    built = time.perf_counter() - start
    node.backward()
    print(f"{2 * 100_000 + 1:,} nodes: built in {built:.2f} s, "
          f"backward in {time.perf_counter() - start - built:.2f} s; d node / d leaf = {leaf.grad}")
    del node, leaf


# %% [markdown]
# ## 4. The engine learns: neurons, layers, a network
#
# An engine that differentiates any expression of `Value`s is enough to train a neural network.
# micrograd shows it with three short classes, and you write them now, with its API, on top of your
# own `Value`.
#
# * `Neuron(nin, nonlin=True)` holds a list `w` of `nin` weights and a bias `b`, all `Value`s. The
#   weights start uniform in $[-1, 1]$, drawn with Python's `random` module (so `random.seed` fixes
#   them), and the bias starts at 0. Calling it on a list `x` of `nin` numbers or `Value`s returns
#   $\mathrm{relu}(\sum_i w_i x_i + b)$, or the affine value $\sum_i w_i x_i + b$ when `nonlin` is
#   False. `parameters()` returns `w + [b]`.
# * `Layer(nin, nout, **kwargs)` holds `nout` neurons and passes its keyword arguments on to them.
#   Calling it returns the list of the neurons' outputs, or the single output itself when
#   `nout == 1`. `parameters()` lists the parameters of its first neuron, then of the second, ...
# * `MLP(nin, nouts)` chains layers of widths `nouts` (a list). Every layer applies relu except the
#   last, which stays linear so that the output can be any real number (a score). `parameters()`
#   lists them layer by layer, and `zero_grad()` sets the `grad` of every parameter to 0.
#
# Build each class from the previous one, as micrograd does: a `Layer` makes its neurons with
# `Neuron(...)`, an `MLP` makes its layers with `Layer(...)`. Only `w`, `b`, `parameters()`, calling,
# and `zero_grad()` are graded. Name the rest (the list of neurons, of layers, the `nonlin` flag) as
# you like.
#
# The grade cells below compute the expected outputs and gradients themselves, with `torch` in
# float64, from the `.data` of your parameters. Each class earns its points on its own: if your
# `Value`'s backward rules are not right yet, the gradients are only checked for reaching every
# parameter, and if the class a `Layer` or an `MLP` is built from is not right yet, it is checked
# with a stand-in for it.

# %% deletable=false nbgrader={"grade": false, "grade_id": "Neuron", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Neuron:
    """relu(sum_i w_i x_i + b), or the affine value when nonlin is False; w_i ~ U[-1, 1], b = 0."""

    def __init__(self, nin, nonlin=True):
        ### BEGIN SOLUTION
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0.0)
        self.nonlin = nonlin
        ### END SOLUTION

    def __call__(self, x):
        ### BEGIN SOLUTION
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act
        ### END SOLUTION

    def parameters(self):
        ### BEGIN SOLUTION
        return self.w + [self.b]
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Neuron_structure", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Neuron's parameters: w a list of nin Values, b a Value at 0, parameters() = w + [b]; weights uniform in [-1, 1] from `random`.
def _check_neuron_structure(nin, **kwargs):
    what = f"Neuron({nin}{''.join(f', {k}={v}' for k, v in kwargs.items())})"
    neuron = checks.call(Neuron, nin, **kwargs)
    w, b = getattr(neuron, "w", None), getattr(neuron, "b", None)
    if not isinstance(w, (list, tuple)) or len(w) != nin or not all(isinstance(wi, Value) for wi in w):
        raise AssertionError(f"{what}.w must be a list of {nin} Values, got {w!r:.80} (diagnosis: wrong_return)")
    if not isinstance(b, Value):
        raise AssertionError(f"{what}.b must be a Value, got {b!r:.80} (diagnosis: wrong_return)")
    params = nn_checks.check_structure(neuron, Value, nn_checks.Layout(nin, (1,)), what)
    if any(p is not q for p, q in zip(params, list(w) + [b])):
        raise AssertionError(f"{what}.parameters() must list the Values w[0], ..., w[{nin - 1}], then b, in that "
                             "order (diagnosis: parameter_order)")


checks.call(Neuron, 2)  # written at all?
_check_neuron_structure(3)
_check_neuron_structure(1, nonlin=False)
nn_checks.check_random_neuron(Neuron, "Neuron(4)", 4)
print("Neuron holds nin weights drawn from random in [-1, 1] and a bias at 0, and lists them in order.")
### BEGIN HIDDEN TESTS
for _nin in (2, 5, 16):
    _check_neuron_structure(_nin)
    _check_neuron_structure(_nin, nonlin=True)
nn_checks.check_random_neuron(Neuron, "Neuron(1, nonlin=False)", 1, nonlin=False)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Neuron_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Neuron's output (relu, or affine with nonlin=False) and its gradients, against torch (float64) from the parameters' data.
def _check_neuron(nin, seed, **kwargs):
    what = f"Neuron({nin}{''.join(f', {k}={v}' for k, v in kwargs.items())})"
    relu = kwargs.get("nonlin", True)
    rng = random.Random(seed)
    layout = nn_checks.Layout(nin, (1,))
    neuron = checks.call(Neuron, nin, **kwargs)
    params = nn_checks.parameters_of(neuron, Value, what, layout)
    for bias in (0.4, -0.3):  # non-trivial parameters: a wrong rule cannot hide behind b = 0
        nn_checks.set_data(params, [rng.uniform(-1.5, 1.5) for _ in params[:-1]] + [bias])
        for x in ([0.0] * nin, [rng.uniform(-2, 2) for _ in range(nin)], [rng.uniform(-2, 2) for _ in range(nin)]):
            nn_checks.check_forward(neuron, params, layout, x, relu, f"{what} at x = {[round(v, 3) for v in x]}")
            nn_checks.check_forward(neuron, params, layout, [Value(v) for v in x], relu,
                                    f"{what} called on a list of Values")
        nn_checks.check_gradients(neuron, params, layout, Value, [rng.uniform(-2, 2) for _ in range(nin)], relu,
                                  what, seed)


checks.call(Neuron, 2)  # written at all?
_check_neuron(3, 1)
_check_neuron(3, 2, nonlin=False)
_check_neuron(1, 3)
print("Neuron computes relu(w . x + b) (or w . x + b), and gradients flow to w, b and x.")
### BEGIN HIDDEN TESTS
for _seed, _nin in enumerate((2, 4, 7)):
    _check_neuron(_nin, 10 + _seed)
    _check_neuron(_nin, 20 + _seed, nonlin=False)
    _check_neuron(_nin, 30 + _seed, nonlin=True)
### END HIDDEN TESTS

# %% deletable=false nbgrader={"grade": false, "grade_id": "Layer", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Layer:
    """nout neurons on the same inputs: [n(x) for each neuron], or the single output when nout == 1."""

    def __init__(self, nin, nout, **kwargs):
        ### BEGIN SOLUTION
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]
        ### END SOLUTION

    def __call__(self, x):
        ### BEGIN SOLUTION
        outs = [n(x) for n in self.neurons]
        return outs[0] if len(outs) == 1 else outs
        ### END SOLUTION

    def parameters(self):
        ### BEGIN SOLUTION
        return [p for n in self.neurons for p in n.parameters()]
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Layer", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Layer: nout neurons in parameters() order, keyword arguments passed to Neuron, a list out (a single Value
# when nout == 1), gradients against torch (float64). If your Neuron (or Value) is not right yet, Layer is
# checked with a stand-in Neuron instead, so that it earns its points on its own.
def _check_layer(nin, nout, seed, **kwargs):
    what = f"Layer({nin}, {nout}{''.join(f', {k}={v}' for k, v in kwargs.items())})"
    relu = kwargs.get("nonlin", True)
    rng = random.Random(seed)
    layout = nn_checks.Layout(nin, (nout,))
    layer = checks.call(Layer, nin, nout, **kwargs)
    params = nn_checks.check_structure(layer, Value, layout, what)
    nn_checks.set_data(params, [rng.uniform(-0.5, 0.5) if k in layout.bias_positions() else rng.uniform(-1.5, 1.5)
                                for k in range(len(params))])
    for x in ([rng.uniform(-2, 2) for _ in range(nin)] for _ in range(3)):
        nn_checks.check_forward(layer, params, layout, x, relu, f"{what} at x = {[round(v, 3) for v in x]}",
                                hint="; Layer passes its keyword arguments on to each Neuron")
    nn_checks.check_gradients(layer, params, layout, Value, [rng.uniform(-2, 2) for _ in range(nin)], relu, what, seed)


def _layer_checks(cases):
    def run():
        checks.call(Layer, 2, 3)  # written at all?
        for args, kwargs in cases:
            _check_layer(*args, **kwargs)

    nn_checks.graded_with_stand_ins(run, lambda: nn_checks.quick_check(Neuron, Value, 2, ()),
                                    lambda: nn_checks.check_layer_with_stand_ins(Layer, Value, globals()),
                                    "Layer", "Neuron")


_layer_checks([((3, 4, 1), {}), ((3, 2, 2), {"nonlin": False}), ((2, 1, 3), {})])
print("Layer lists its neurons' outputs (one Value when nout == 1) and their parameters in order.")
### BEGIN HIDDEN TESTS
_layer_checks([((1, 3, 11), {}), ((4, 1, 12), {"nonlin": False}), ((5, 6, 13), {}), ((2, 5, 14), {"nonlin": True})])
### END HIDDEN TESTS

# %% deletable=false nbgrader={"grade": false, "grade_id": "MLP", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MLP:
    """Layers of widths nouts chained on nin inputs: relu after each layer except the last (linear)."""

    def __init__(self, nin, nouts):
        ### BEGIN SOLUTION
        sizes = [nin] + list(nouts)
        self.layers = [Layer(sizes[i], sizes[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]
        ### END SOLUTION

    def __call__(self, x):
        ### BEGIN SOLUTION
        for layer in self.layers:
            x = layer(x)
        return x
        ### END SOLUTION

    def parameters(self):
        ### BEGIN SOLUTION
        return [p for layer in self.layers for p in layer.parameters()]
        ### END SOLUTION

    def zero_grad(self):
        """Every parameter's grad back to 0."""
        ### BEGIN SOLUTION
        for p in self.parameters():
            p.grad = 0.0
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_MLP", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# MLP: parameters layer by layer, relu on every layer but the last (linear), a single Value out when the last width is 1.
# If your Layer (or what it is built from) is not right yet, MLP is checked with a stand-in Layer instead.
# It is built from your Layer, checked first.
def _check_mlp(nin, nouts, seed):
    what = f"MLP({nin}, {nouts})"
    rng = random.Random(seed)
    layout = nn_checks.Layout(nin, tuple(nouts))
    mlp = checks.call(MLP, nin, list(nouts))
    params = nn_checks.check_structure(mlp, Value, layout, what)
    nn_checks.set_data(params, [rng.uniform(-0.5, 0.5) if k in layout.bias_positions() else rng.uniform(-1.2, 1.2)
                                for k in range(len(params))])
    for x in ([rng.uniform(-2, 2) for _ in range(nin)] for _ in range(4)):
        nn_checks.check_forward(mlp, params, layout, x, False, f"{what} at x = {[round(v, 3) for v in x]}")
    return mlp, params, layout


def _mlp_checks(check, cases):
    def run():
        checks.call(MLP, 2, [3, 1])  # written at all?
        for args in cases:
            check(*args)

    nn_checks.graded_with_stand_ins(run, lambda: nn_checks.quick_check(Layer, Value, 2, (3,)),
                                    lambda: nn_checks.check_mlp_with_stand_ins(MLP, Value, globals()), "MLP", "Layer")


_mlp_checks(_check_mlp, [(2, [4, 4, 1], 1), (3, [5, 2], 2)])
print("MLP chains its layers, relu everywhere but on the last layer, parameters in layer order.")
### BEGIN HIDDEN TESTS
_mlp_checks(_check_mlp, [(1, [3, 1], 11), (4, [6, 5, 4, 3], 12), (2, [1], 13), (2, [16, 16, 1], 14)])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_MLP_gradients", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# MLP: gradients of a loss through every layer against torch (float64); zero_grad() resets every parameter of every layer.
# If your Layer (or what it is built from) is not right yet, MLP is checked with a stand-in Layer instead.
def _check_mlp_gradients(nin, nouts, seed):
    what = f"MLP({nin}, {nouts})"
    rng = random.Random(seed)
    layout = nn_checks.Layout(nin, tuple(nouts))
    mlp = checks.call(MLP, nin, list(nouts))
    params = nn_checks.parameters_of(mlp, Value, what, layout)
    nn_checks.set_data(params, [rng.uniform(-0.5, 0.5) if k in layout.bias_positions() else rng.uniform(-1.2, 1.2)
                                for k in range(len(params))])
    nn_checks.check_gradients(mlp, params, layout, Value, [rng.uniform(-2, 2) for _ in range(nin)], False, what, seed)
    nn_checks.check_zero_grad(mlp, params, layout, what)


def _mlp_checks(check, cases):
    def run():
        checks.call(MLP, 2, [3, 1])  # written at all?
        for args in cases:
            check(*args)

    nn_checks.graded_with_stand_ins(run, lambda: nn_checks.quick_check(Layer, Value, 2, (3,)),
                                    lambda: nn_checks.check_mlp_with_stand_ins(MLP, Value, globals()), "MLP", "Layer")


_mlp_checks(_check_mlp_gradients, [(2, [4, 4, 1], 1), (3, [5, 2], 2)])
print("Gradients flow through every layer of the MLP as torch computes them, and zero_grad() resets them all.")
### BEGIN HIDDEN TESTS
_mlp_checks(_check_mlp_gradients, [(1, [3, 1], 21), (4, [6, 5, 4, 3], 22), (2, [16, 16, 1], 23)])
### END HIDDEN TESTS


# %% [markdown]
# ### Training on the two moons
#
# Two interleaved half-circles that no straight line separates, labelled $y = \pm 1$. The network is
# `MLP(2, [16, 16, 1])`: two hidden relu layers of 16 neurons and one linear output, 337 parameters,
# each a `Value`. Its output $s$ is a score: it predicts $+1$ where $s > 0$.
#
# The loss is the max-margin (hinge) loss of micrograd's demo, averaged over the $N$ points, plus a
# small L2 penalty on the parameters:
#
# $$\mathcal{L} = \frac{1}{N} \sum_{i=1}^{N} \max(0,\, 1 - y_i s_i) + \alpha \sum_p p^2, \qquad \alpha = 10^{-4}.$$
#
# A point costs nothing once it is on the right side with a margin of at least 1, so only the points
# near the boundary or on the wrong side push the parameters (`relu` routes their gradient, and sends
# none from the others). Each step is the plain gradient step of lab 2, $p \leftarrow p - \eta\,\partial
# \mathcal{L} / \partial p$, with $\eta$ going down from 1.0 to 0.1, written with `.data` and `.grad`:
# no optimiser, no `torch`.
#
# **Why so few points and steps.** Every number here is a Python object, and one step over 40 points
# builds about 27,000 `Value`s and sweeps back through them, roughly 0.1 s per step. micrograd's demo
# uses 100 points and 100 steps; here 40 points and 15 steps keep the whole notebook under 20 s.
# Raise `nb_points` and `nb_steps` on your own machine to see a smoother boundary.

# %%
def hinge_loss(model, xs, ys, alpha=1e-4):
    """Mean max(0, 1 - y s) over the points plus alpha * sum p^2, and the accuracy (a float)."""
    scores = [model(x) for x in xs]
    margins = [(1 + -y * s).relu() for y, s in zip(ys, scores)]
    data_loss = sum(margins) * (1.0 / len(margins))
    penalty = alpha * sum(p * p for p in model.parameters())
    accuracy = sum((y > 0) == (s.data > 0) for y, s in zip(ys, scores)) / len(ys)
    return data_loss + penalty, accuracy


def train(model, xs, ys, nb_steps, use_zero_grad=True, schedule_length=None):
    """Plain gradient steps with a decreasing step size; returns the losses and accuracies, one per step."""
    schedule_length = schedule_length or nb_steps
    losses, accuracies = [], []
    for k in range(nb_steps):
        loss, accuracy = hinge_loss(model, xs, ys)
        if use_zero_grad:
            model.zero_grad()
        loss.backward()
        eta = 1.0 - 0.9 * k / schedule_length
        for p in model.parameters():
            p.data -= eta * p.grad
        losses.append(loss.data)
        accuracies.append(accuracy)
    return losses, accuracies


nb_points, nb_steps = 40, 15
xs_moons, ys_moons = moons.load_moons(nb_points, noise=0.1, seed=1)
layout_moons = nn_checks.Layout(2, (16, 16, 1))
with needs("Value", "topological_order", "Neuron", "Layer", "MLP"), graphs.paused_gc():
    random.seed(1337)
    net = MLP(2, [16, 16, 1])
    start_params = [p.data for p in net.parameters()]
    start = time.perf_counter()
    losses_moons, accuracies_moons = train(net, xs_moons, ys_moons, nb_steps)
    seconds = time.perf_counter() - start
    print(f"{len(start_params)} parameters; {nb_steps} steps on {nb_points} points in {seconds:.1f} s")
    for k in [0, 4, 9, nb_steps - 1]:
        print(f"step {k:2}  loss {losses_moons[k]:.3f}  accuracy {accuracies_moons[k]:.0%}")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    moons.plot_boundary(axes[0], start_params, layout_moons, xs_moons, ys_moons, title="before training")
    moons.plot_boundary(axes[1], [p.data for p in net.parameters()], layout_moons, xs_moons, ys_moons,
                        title=f"after {nb_steps} steps: accuracy {accuracies_moons[-1]:.0%}")
    plt.show()

# %% [markdown]
# The boundary is drawn from your parameters' `.data`: the plane is scored by the same formula in
# `torch`, because scoring the 22,500 points of the grid with `Value`s would take half a minute.
#
# ### Forgetting `zero_grad`
#
# Your `backward()` adds into the leaves' `grad`, like `torch`. A parameter is a leaf, so without
# `zero_grad()` each step uses the sum of **all** the gradients computed so far, not the current
# one. Same start (the same seed), same step sizes, but no `zero_grad()`:

# %%
with needs("Value", "topological_order", "Neuron", "Layer", "MLP"), graphs.paused_gc():
    nb_forgetful = 8
    random.seed(1337)
    forgetful = MLP(2, [16, 16, 1])
    losses_forgot, accuracies_forgot = train(forgetful, xs_moons, ys_moons, nb_forgetful, use_zero_grad=False,
                                             schedule_length=nb_steps)
    fig, ax = plt.subplots(figsize=(5.5, 3.4), layout="constrained")
    moons.plot_losses(ax, {"zero_grad() before each backward()": losses_moons[:nb_forgetful],
                           "zero_grad() forgotten": losses_forgot})
    ax.set_title("the same training, with and without zero_grad", fontsize=9)
    plt.show()
    print(f"after {nb_forgetful} steps: loss {losses_moons[nb_forgetful - 1]:.3f} with zero_grad, "
          f"{losses_forgot[-1]:.3f} without (accuracy {accuracies_moons[nb_forgetful - 1]:.0%} against "
          f"{accuracies_forgot[-1]:.0%})")

# %% [markdown]
# The first two losses agree: the first step is the same in both runs, since the gradients start
# at 0. From the second step on, the forgetful run steps
# along a running sum of old gradients: it keeps pushing in directions that were right several
# steps ago, overshoots, and the loss jumps up instead of going down. That is why a training loop
# calls `zero_grad()` before every `backward()`. The same accumulation is useful on purpose when the
# gradient of a sum of losses is wanted, as in `accumulated_gradient` (part 7).
#
# ### The computation-graph lecture's logistic regression, on your engine
#
# The computation-graph lecture (seed 004) writes logistic regression as a graph: an input
# $x \in \mathbb{R}^D$ with label $y = +1$, weights $w$, the prediction $p = \sigma(w \cdot x)$ with
# $\sigma(u) = 1 / (1 + e^{-u})$, and the loss
#
# $$L = \tfrac12 \|w\|^2 - \lambda \log \sigma(w \cdot x).$$
#
# It runs the sweep by hand: $\bar L = 1$, $\bar p = -\lambda / p$, $\bar u = \bar p\, \sigma(u)(1 - \sigma(u))$
# for $u = w \cdot x$, and $\bar w = w + \bar u\, x$, so that
# $\partial L / \partial w = w - \lambda\,(1 - \sigma(w \cdot x))\, x$.
# Your engine builds the same graph from `+`, `*`, `exp`, `**` and `log`, and gets the same numbers:

# %%
with needs("Value", "topological_order"):
    lam, x_lr = 2.0, [1.0, -2.0, 0.5]
    w_lr = [Value(0.3), Value(0.8), Value(-0.5)]
    u_lr = sum(wi * xi for wi, xi in zip(w_lr, x_lr))
    p_lr = 1 / (1 + (-u_lr).exp())
    loss_lr = 0.5 * sum(wi * wi for wi in w_lr) - lam * p_lr.log()
    loss_lr.backward()
    sig = 1 / (1 + math.exp(-u_lr.data))
    by_hand = [wi.data - lam * (1 - sig) * xi for wi, xi in zip(w_lr, x_lr)]
    w_t = torch.tensor([wi.data for wi in w_lr], dtype=torch.float64, requires_grad=True)
    x_t = torch.tensor(x_lr, dtype=torch.float64)
    (by_torch,) = torch.autograd.grad(0.5 * w_t @ w_t - lam * torch.nn.functional.logsigmoid(w_t @ x_t), w_t)
    print(f"L = {loss_lr.data:.6f}, u = w . x = {u_lr.data:.2f}")
    print("your engine :", [round(wi.grad, 6) for wi in w_lr])
    print("by hand     :", [round(g, 6) for g in by_hand])
    print("torch       :", [round(g, 6) for g in by_torch.tolist()])

# %% [markdown]
# Now let the example be far on the wrong side, $w \cdot x = -800$. Mathematically nothing special
# happens: $-\log \sigma(u) = \log(1 + e^{-u}) \approx 800$. But the graph computes $e^{-u} = e^{800}$
# on the way, which does not fit in a float:

# %%
with needs("Value", "topological_order"):
    u_far = Value(-800.0)
    try:
        far = (1 + (-u_far).exp()).log()
        print("log(1 + exp(800)) =", far.data)
    except OverflowError as exc:
        print("log(1 + exp(-u)) at u = -800 raises OverflowError:", exc)

# %% [markdown]
# The term $-\log \sigma(u)$ is the function $\log(1 + e^{v})$ at $v = -u$. Lab 5 writes it as the
# custom `torch.autograd.Function` **`Log1pExp`**, with a forward that never overflows (for
# $v > 0$ it computes $v + \log(1 + e^{-v})$) and a hand-written backward, $\sigma(v)$ times the
# incoming gradient. In one node it replaces the four nodes `neg`, `exp`, `+ 1`, `log` of this
# graph, and their four backward steps by one.


# %% [markdown]
# ## 5. Forward mode: dual numbers
#
# Reverse mode is not the only way to apply the chain rule (the computation-graph lecture mentions
# the other one and its cost). **Forward mode** carries, beside each
# value $u$, its derivative $u'$ with respect to one chosen input, and updates both at every
# operation. Write a number as $u + u' \varepsilon$ with the rule $\varepsilon^2 = 0$:
# $(u + u'\varepsilon) + (v + v'\varepsilon) = (u + v) + (u' + v')\varepsilon$, and a smooth
# function satisfies $f(u + u'\varepsilon) = f(u) + f'(u)\,u'\varepsilon$. Work out the product,
# the quotient and the power the same way: expand, then drop $\varepsilon^2$.
#
# `Dual(val, der)` does this. Write its operations; each returns a new `Dual` (the forward rule
# and the derivative rule together). Plain numbers are constants: derivative 0. `-`, the reflected
# forms and `/` by a number on the left are given, built from yours.

# %% deletable=false nbgrader={"grade": false, "grade_id": "Dual", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Dual:
    """A dual number val + der * eps with eps ** 2 = 0: a value and its derivative along one direction."""

    def __init__(self, val, der=0.0):
        self.val = float(val)
        self.der = float(der)

    def __repr__(self):
        return f"Dual(val={self.val:.6g}, der={self.der:.6g})"

    @staticmethod
    def _lift(x):
        return x if isinstance(x, Dual) else Dual(x, 0.0)

    def __add__(self, other):
        """self + other"""
        other = Dual._lift(other)
        ### BEGIN SOLUTION
        return Dual(self.val + other.val, self.der + other.der)
        ### END SOLUTION

    def __mul__(self, other):
        """self * other"""
        other = Dual._lift(other)
        ### BEGIN SOLUTION
        return Dual(self.val * other.val, self.der * other.val + self.val * other.der)
        ### END SOLUTION

    def __truediv__(self, other):
        """self / other"""
        other = Dual._lift(other)
        ### BEGIN SOLUTION
        return Dual(self.val / other.val, (self.der * other.val - self.val * other.der) / other.val**2)
        ### END SOLUTION

    def __pow__(self, k):
        """self ** k, for a plain number k"""
        ### BEGIN SOLUTION
        return Dual(self.val**k, k * self.val ** (k - 1) * self.der)
        ### END SOLUTION

    def __neg__(self):
        """-self"""
        ### BEGIN SOLUTION
        return Dual(-self.val, -self.der)
        ### END SOLUTION

    def exp(self):
        """exp(self)"""
        ### BEGIN SOLUTION
        e = math.exp(self.val)
        return Dual(e, e * self.der)
        ### END SOLUTION

    def log(self):
        """ln(self)"""
        ### BEGIN SOLUTION
        return Dual(math.log(self.val), self.der / self.val)
        ### END SOLUTION

    def sin(self):
        """sin(self)"""
        ### BEGIN SOLUTION
        return Dual(math.sin(self.val), math.cos(self.val) * self.der)
        ### END SOLUTION

    def cos(self):
        """cos(self)"""
        ### BEGIN SOLUTION
        return Dual(math.cos(self.val), -math.sin(self.val) * self.der)
        ### END SOLUTION

    def tanh(self):
        """tanh(self)"""
        ### BEGIN SOLUTION
        t = math.tanh(self.val)
        return Dual(t, (1.0 - t * t) * self.der)
        ### END SOLUTION

    # ---- derived from the operations above ----

    def __sub__(self, other):
        return self + (-Dual._lift(other))

    def __radd__(self, other):
        return self + other

    def __rsub__(self, other):
        return Dual._lift(other) - self

    def __rmul__(self, other):
        return self * other

    def __rtruediv__(self, other):
        return Dual._lift(other) / self


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Dual", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Dual arithmetic: + - * / ** and unary minus, values and derivatives compared with torch (float64).
graphs.check_dual_op(Dual, "a + b", lambda a, b: a + b, [2.0, -3.0], [1.0, 0.5])
graphs.check_dual_op(Dual, "a * b", lambda a, b: a * b, [2.0, -3.0], [1.0, 0.5])
graphs.check_dual_op(Dual, "a / b", lambda a, b: a / b, [2.0, -3.0], [1.0, 0.5])
graphs.check_dual_op(Dual, "a ** 3", lambda a: a**3, [1.5], [1.0])
graphs.check_dual_op(Dual, "-a", lambda a: -a, [1.5], [1.0])
graphs.check_dual_op(Dual, "a - b", lambda a, b: a - b, [2.0, -3.0], [1.0, 0.5])
graphs.check_dual_op(Dual, "2 * a + 1", lambda a: 2 * a + 1, [1.5], [1.0])
graphs.check_dual_op(Dual, "2 / a", lambda a: 2 / a, [1.5], [1.0])
print("Dual arithmetic carries the right derivatives.")
### BEGIN HIDDEN TESTS
_rng = random.Random(4109)
for _ in range(5):
    _vals = [_rng.uniform(0.3, 3), _rng.uniform(-3, -0.3)]
    _ders = [_rng.uniform(-2, 2), _rng.uniform(-2, 2)]
    graphs.check_dual_op(Dual, "a * b", lambda a, b: a * b, _vals, _ders)
    graphs.check_dual_op(Dual, "a / b", lambda a, b: a / b, _vals, _ders)
    graphs.check_dual_op(Dual, "a - b * a", lambda a, b: a - b * a, _vals, _ders)
    graphs.check_dual_op(Dual, "a ** -1.5", lambda a, b: a**-1.5, _vals, _ders)
graphs.check_dual_op(Dual, "a ** 2", lambda a: a**2, [0.0], [1.0])
graphs.check_dual_op(Dual, "3 - a", lambda a: 3 - a, [0.5], [2.0])
graphs.check_dual_op(Dual, "a * a", lambda a: a * a, [-1.2], [1.0])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Dual_functions", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Dual exp, log, sin, cos, tanh: values and derivatives compared with torch (float64).
for _name in ["exp", "log", "sin", "cos", "tanh"]:
    graphs.check_dual_op(Dual, f"a.{_name}()", lambda a, _n=_name: getattr(a, _n)(), [1.3], [1.0])
print("Dual exp, log, sin, cos and tanh carry the right derivatives.")
### BEGIN HIDDEN TESTS
_rng = random.Random(4110)
for _ in range(4):
    _v, _d = _rng.uniform(0.1, 4), _rng.uniform(-2, 2)
    for _name in ["exp", "log", "sin", "cos", "tanh"]:
        graphs.check_dual_op(Dual, f"a.{_name}()", lambda a, _n=_name: getattr(a, _n)(), [_v], [_d])
graphs.check_dual_op(Dual, "a.tanh()", lambda a: a.tanh(), [0.0], [1.0])
graphs.check_dual_op(Dual, "a.sin() * a.exp()", lambda a: a.sin() * a.exp(), [0.7], [1.0])
### END HIDDEN TESTS

# %% [markdown]
# One forward pass with `der = 1` on input $x_i$ and `der = 0` on the others gives
# $\partial f / \partial x_i$, so the whole gradient takes one pass per input. Write
# `forward_mode_gradient(f, xs)`: `f` takes a list of `Dual`s and returns a `Dual`; return the list
# of the $n$ partial derivatives as Python floats.

# %% deletable=false nbgrader={"grade": false, "grade_id": "forward_mode_gradient", "locked": false, "schema_version": 3, "solution": true, "task": false}
def forward_mode_gradient(f, xs):
    """[df/dx_i at xs for i = 0..n-1]: pass i seeds der = 1 on input i and 0 on the others."""
    ### BEGIN SOLUTION
    grads = []
    for i in range(len(xs)):
        seeded = [Dual(x, 1.0 if j == i else 0.0) for j, x in enumerate(xs)]
        grads.append(float(f(seeded).der))
    return grads
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_forward_mode_gradient", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# forward_mode_gradient: one pass per input, each seeding one input, compared with torch.autograd.
# The function f is built by this test from your Dual's val and der only (its derivative comes from torch),
# so this check does not depend on your Dual arithmetic.
def _check_forward_mode(g, xs, what):
    calls = []

    def f_at(vals, ders):  # the values and seeds of f's Dual inputs -> f's value and directional derivative
        calls.append([float(d) for d in ders])
        x = torch.tensor(vals, dtype=torch.float64, requires_grad=True)
        out = g(x)
        (grad,) = torch.autograd.grad(out, x)
        return float(out.detach()), float(grad @ torch.tensor(calls[-1], dtype=torch.float64))

    f = graphs.dual_function(Dual, f_at)  # f(list of Duals) -> Dual(value, derivative), with f_at's numbers
    got = checks.call(forward_mode_gradient, f, list(xs))
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    (want,) = torch.autograd.grad(g(x), x)
    if not isinstance(got, (list, tuple)) or len(got) != len(xs):
        raise AssertionError(f"{what}: expected a list of {len(xs)} partial derivatives, got {got!r} (diagnosis: wrong_shape)")
    if len(calls) != len(xs):
        raise AssertionError(f"{what}: f was called {len(calls)} times for {len(xs)} inputs; forward mode makes one pass "
                             "per input (diagnosis: passes)")
    for k, seed in enumerate(calls):
        if sorted(seed) != [0.0] * (len(xs) - 1) + [1.0]:
            raise AssertionError(f"{what}: pass {k} seeded the derivatives {seed}; each pass sets der = 1 on one input "
                                 "and 0 on all the others (diagnosis: seed)")
    checks.assert_close(torch.tensor([float(v) for v in got], dtype=torch.float64), want, name=f"{what}: the gradient")


_check_forward_mode(lambda x: torch.log(x[0]) + x[0] * x[1] - torch.sin(x[1]), [2.0, 5.0],
                    "f = ln(x1) + x1 x2 - sin(x2) at (2, 5), from the reverse-mode table")
_check_forward_mode(lambda x: (x ** 2).sum() * torch.tanh(x[0]), [0.5, -1.0, 2.0], "sum(x ** 2) * tanh(x0)")
print("forward_mode_gradient makes one seeded pass per input and returns the gradient.")
### BEGIN HIDDEN TESTS
_check_forward_mode(lambda x: torch.exp(x[0]), [0.3], "exp(x0), one input")
_gen = torch.Generator().manual_seed(4111)
for _n in [2, 5, 8]:
    _w = torch.randn(_n, generator=_gen, dtype=torch.float64)
    _check_forward_mode(lambda x, _w=_w: torch.sin(x @ _w) + (x * x).prod(), torch.randn(_n, generator=_gen).tolist(),
                        f"sin(x . w) + prod(x ** 2) with {_n} inputs")
### END HIDDEN TESTS

# %% [markdown]
# ### The cost of a gradient: forward against reverse
#
# Take $f(x) = \sum_i \sin(x_i)\, x_{i+1}$ (indices wrap around) with $n$ inputs. It costs about
# $3n$ operations. Forward mode needs $n$ passes for the whole gradient, so about $3n^2$
# operations. Reverse mode needs one forward and one backward pass, so about $6n$. For a loss
# with millions of parameters and a single output, only reverse mode is affordable.
# (Forward mode is the cheap one when there are few inputs and many outputs.)

# %%
def ring(xs):
    n = len(xs)
    total = xs[0] * 0.0
    for i in range(n):
        total = total + xs[i].sin() * xs[(i + 1) % n]
    return total


def best_time(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def reverse_gradient(xs):
    leaves = [Value(x) for x in xs]
    ring(leaves).backward()
    return [leaf.grad for leaf in leaves]


sizes = [2, 4, 8, 16, 32, 64, 128]
with needs("Value", "topological_order", "Dual", "forward_mode_gradient"):
    rng = random.Random(0)
    forward_times, reverse_times = [], []
    for n in sizes:
        xs = [rng.uniform(-1, 1) for _ in range(n)]
        gap = max(abs(u - v) for u, v in zip(forward_mode_gradient(ring, xs), reverse_gradient(xs)))
        if gap > 1e-9:
            print(f"n = {n}: forward and reverse mode disagree by {gap:.2e}: check Dual and Value")
        forward_times.append(best_time(lambda: forward_mode_gradient(ring, xs)))
        reverse_times.append(best_time(lambda: reverse_gradient(xs)))
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    ax.loglog(sizes, forward_times, "o-", label="forward mode (n passes)")
    ax.loglog(sizes, reverse_times, "s-", label="reverse mode (1 forward + 1 backward)")
    ax.loglog(sizes, [forward_times[0] * (n / sizes[0]) ** 2 for n in sizes], ":", color="gray", label="slope 2")
    ax.loglog(sizes, [reverse_times[0] * n / sizes[0] for n in sizes], "--", color="gray", label="slope 1")
    ax.set_xlabel("number of inputs n")
    ax.set_ylabel("seconds for the whole gradient")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    print(f"n = {sizes[-1]}: forward {forward_times[-1] * 1e3:.1f} ms, reverse {reverse_times[-1] * 1e3:.1f} ms")
    plt.show()


# %% [markdown]
# ## 6. A tensor DAG with weight sharing
#
# The same algorithm works when the nodes hold tensors: each operator then needs its Jacobians, or
# rather products with them. Fleuret's lecture uses a small DAG:
#
# $$x^{(1)} = w^{(1)} x, \qquad x^{(2)} = x + w^{(2)} x^{(1)}, \qquad x^{(3)} = w^{(1)} \left(x^{(1)} + x^{(2)}\right), \qquad q = \|x^{(3)}\|.$$
#
# $w^{(1)}$ is used twice, by $\phi^{(1)}$ and by $\phi^{(3)}$. This is **weight sharing**: the same
# parameters shape two parts of the computation. Its gradient is the sum of the two contributions,
# $J_{\phi^{(1)}|w^{(1)}} [\partial q / \partial x^{(1)}] + J_{\phi^{(3)}|w^{(1)}} [\partial q / \partial x^{(3)}]$.
# Siamese networks are built this way, with one sub-network applied to several inputs.
#
# Write `dag_forward` (returns the scalar tensor `q`) and `dag_backward`, which returns
# `(grad_w1, grad_w2)` **by hand**, without autograd. It is checked under `torch.no_grad()`.
# What you need, for a column vector $u$ with $y = W u$: the upstream gradient $g = \partial q / \partial y$
# gives $\partial q / \partial W = g u^T$ (`torch.outer(g, u)`) and $\partial q / \partial u = W^T g$.
# The norm gives $\partial q / \partial x^{(3)} = x^{(3)} / q$. Where a vector feeds two places,
# add the two gradients.

# %% deletable=false nbgrader={"grade": false, "grade_id": "dag_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def dag_forward(w1, w2, x):
    """q = ||w1 (x1 + x2)|| with x1 = w1 x and x2 = x + w2 x1."""
    ### BEGIN SOLUTION
    x1 = w1 @ x  # (n,)
    x2 = x + w2 @ x1  # (n,)
    x3 = w1 @ (x1 + x2)  # (n,)
    return x3.norm()
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_dag_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# dag_forward: the value of q, compared with a direct computation in float64; dtype kept.
def _dag_reference(w1, w2, x):
    h1 = torch.mv(w1, x)
    return torch.linalg.vector_norm(torch.mv(w1, h1 + x + torch.mv(w2, h1)))


_gen = torch.Generator().manual_seed(40)
for _n, _dtype in [(5, torch.float64), (3, torch.float32), (1, torch.float64)]:
    _w1, _w2, _x = (torch.randn(*s, generator=_gen, dtype=_dtype) for s in [(_n, _n), (_n, _n), (_n,)])
    _q = checks.call(dag_forward, _w1, _w2, _x)
    checks.assert_close(_q, _dag_reference(_w1.double(), _w2.double(), _x.double()).to(_dtype),
                        name=f"q for n = {_n} in {_dtype}", dtype=_dtype)
print("dag_forward computes q.")
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(4112)
for _t in range(6):
    _n = 1 + _t
    _w1, _w2, _x = (torch.randn(*s, generator=_gen, dtype=torch.float64) for s in [(_n, _n), (_n, _n), (_n,)])
    checks.assert_close(checks.call(dag_forward, _w1, _w2, _x), _dag_reference(_w1, _w2, _x), name=f"q for n = {_n}")
### END HIDDEN TESTS

# %% deletable=false nbgrader={"grade": false, "grade_id": "dag_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def dag_backward(w1, w2, x):
    """(dq/dw1, dq/dw2) by hand, without autograd; both uses of w1 contribute to dq/dw1."""
    ### BEGIN SOLUTION
    x1 = w1 @ x  # (n,)
    x2 = x + w2 @ x1  # (n,)
    s = x1 + x2  # (n,)
    x3 = w1 @ s  # (n,)
    g3 = x3 / x3.norm()  # dq/dx3
    gs = w1.T @ g3  # dq/ds, which is also dq/dx2
    g1 = gs + w2.T @ gs  # x1 reaches q directly through s, and through x2
    grad_w2 = torch.outer(gs, x1)
    grad_w1 = torch.outer(g3, s) + torch.outer(g1, x)  # the two uses of w1 add up
    return grad_w1, grad_w2
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_dag_backward", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# dag_backward: both gradients compared with torch.autograd (float64), computed under torch.no_grad() without autograd.
def _dag_reference(w1, w2, x):
    h1 = torch.mv(w1, x)
    return torch.linalg.vector_norm(torch.mv(w1, h1 + x + torch.mv(w2, h1)))


def _check_dag_backward(n, dtype, gen):
    w1, w2, x = (torch.randn(*s, generator=gen, dtype=dtype) for s in [(n, n), (n, n), (n,)])
    with torch.no_grad():
        try:
            got = checks.call(dag_backward, w1, w2, x)
        except AssertionError as exc:
            if "does not require grad" in str(exc) or "does not have a grad_fn" in str(exc):
                raise AssertionError("dag_backward seems to use autograd; write the gradients by hand from the chain "
                                     "rule (diagnosis: used_autograd)") from None
            raise
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise AssertionError(f"dag_backward must return a pair (grad_w1, grad_w2), got {type(got).__name__} "
                             "(diagnosis: not_a_tensor)")
    r1, r2, rx = (t.detach().double().requires_grad_() for t in (w1, w2, x))
    q = _dag_reference(r1, r2, rx)
    want = torch.autograd.grad(q, (r1, r2))
    checks.assert_grads_close({"grad_w1": got[0], "grad_w2": got[1]},
                              {"grad_w1": want[0].to(dtype), "grad_w2": want[1].to(dtype)},
                              name=f"dag_backward (n = {n}, {dtype})", dtype=dtype)


_gen = torch.Generator().manual_seed(41)
_check_dag_backward(5, torch.float64, _gen)
_check_dag_backward(3, torch.float32, _gen)
_check_dag_backward(1, torch.float64, _gen)
print("dag_backward matches autograd, with both uses of w1 counted.")
### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(4113)
for _n in range(1, 7):
    _check_dag_backward(_n, torch.float64, _gen)
_check_dag_backward(6, torch.float32, _gen)
### END HIDDEN TESTS

# %% [markdown]
# Your gradients beside autograd's, in a one-line-per-tensor table. Below that is the graph autograd
# recorded for `q`, drawn by following `grad_fn.next_functions` from `q` back to the leaves. The
# leaf `w1` (an `AccumulateGrad` node) feeds **two** matrix products. In the backward pass it
# receives one gradient from each, and autograd adds them into `w1.grad`.

# %%
with needs("dag_forward", "dag_backward"):
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, generator=gen, dtype=torch.float64)
    q = dag_forward(w1, w2, x)
    auto_w1, auto_w2 = torch.autograd.grad(q, (w1, w2), retain_graph=True)
    with torch.no_grad():
        hand_w1, hand_w2 = dag_backward(w1, w2, x)
    print(checks.grad_table({"w1": hand_w1, "w2": hand_w2}, {"w1": auto_w1, "w2": auto_w2}))
    fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
    graphs.draw_torch_graph(ax, q, {"w1": w1, "w2": w2})
    ax.set_title("autograd graph of q = dag_forward(w1, w2, x): w1 feeds two products", fontsize=10)
    plt.show()

# %% [markdown]
# ### A graph that depends on the data
#
# Fleuret's lecture stresses that the autograd graph is not the network's structure: it is the trace
# of the operations that actually ran, so it can depend on the data, and miss or repeat parts of
# the network. His example applies the slices `w[0], w[1], ...` of one parameter tensor in a loop
# whose length `k` is an argument. Here `k` depends on the input itself (one more step for each
# unit of its norm, at most 3), and two inputs share the weights: `w[0]` is used by both, `w[1]`
# only by the input that loops longer, and `w[2]` by neither of these two.

# %%
torch.manual_seed(0)
w_loop = torch.nn.Parameter(torch.rand(3, 10, 10) / 3)


def loop_net(x):
    k = min(3, 1 + int(x.norm().item()))  # the number of steps depends on the input
    for i in range(k):
        x = torch.tanh(w_loop[i].mv(x))
    return x, k


u_in, v_in = torch.full((10,), 0.1), torch.full((10,), 0.45)  # norms 0.32 and 1.42
u_out, k_u = loop_net(u_in)
v_out, k_v = loop_net(v_in)
q_loop = u_out.dot(v_out)
q_loop.backward()
print(f"the loop ran {k_u} time(s) on u and {k_v} time(s) on v")
for i in range(3):
    uses = (i < k_u) + (i < k_v)
    print(f"w[{i}] is used {uses} time(s); |w.grad[{i}]| = {w_loop.grad[i].norm().item():.4f}")
fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
graphs.draw_torch_graph(ax, q_loop, {"w": w_loop})
ax.set_title(f"autograd graph of q = u . v: {k_u} step(s) for u, {k_v} for v, all from the one leaf w", fontsize=10)
plt.show()

# %% [markdown]
# The leaf `w` appears once, with one `AccumulateGrad` node. Each use of a slice is a `SelectBackward`
# node, and the gradients of every use are added into `w.grad`: `w[0]` gets two contributions, a
# slice used once gets one, and a slice that the data never reached gets nothing, a zero block.
# Another input would build another graph. This is what frameworks that record the graph while the
# code runs ("define by run") allow: ordinary Python loops and `if`s in the forward pass.


# %% [markdown]
# ## 7. `torch.autograd` at work
#
# The forward pass is ordinary code. `torch` records a graph while it runs, like your `Value`s do.
#
# * A tensor has a Boolean `requires_grad` (False by default). An operation's result requires grad
#   if any operand does. Only such results are recorded, and they get a `grad_fn`: the node of
#   the backward graph that knows the operation's local rule.
# * **Leaves** are tensors that no recorded operation produced: the inputs and the parameters
#   (`nn.Parameter` has `requires_grad=True` by default).
# * `loss.backward()` runs the sweep and **adds** the gradients into the `.grad` of the leaves. Your
#   `Value.backward()` does the same.
# * `torch.autograd.grad(outputs, inputs)` returns the gradients as a tuple and touches no `.grad`.
#
# Fleuret's first autograd example: $\ell = \|x\|$ at $x = (1, 2, 2)$, so $\ell = 3$ and
# $\partial \ell / \partial x_i = x_i / \|x\|$.

# %%
x = torch.tensor([1.0, 2.0, 2.0]).requires_grad_()
l = x.norm()
print("l =", l.item(), "| x is a leaf:", x.is_leaf, "| l is a leaf:", l.is_leaf, "| l.grad_fn:", l.grad_fn)
print("autograd.grad:", torch.autograd.grad(l, (x,), retain_graph=True), "| x.grad is still", x.grad)
l.backward(retain_graph=True)
print("after one backward():  x.grad =", x.grad)
l.backward()
print("after two backward():  x.grad =", x.grad, " (accumulated: twice x / |x|)")
x.grad = None  # what zero_grad does for a model's parameters
c = torch.tensor([1.0, 2.0, 2.0])
print("a tensor built without requires_grad:", c.requires_grad, "| (c * x).requires_grad:", (c * x).requires_grad)

# %% [markdown]
# Fleuret's small tanh network, and the graph autograd builds for its loss. The leaves are the
# four parameters. The input `x` and the `target` need no gradient, so they do not appear.

# %%
torch.manual_seed(0)
w1 = torch.nn.Parameter(torch.rand(20, 10))
b1 = torch.nn.Parameter(torch.rand(20))
w2 = torch.nn.Parameter(torch.rand(5, 20))
b2 = torch.nn.Parameter(torch.rand(5))
x = torch.rand(10)
h = torch.tanh(w1.mv(x) + b1)
out = torch.tanh(w2.mv(h) + b2)
target = torch.rand(5)
loss = (out - target).pow(2).sum()
fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
graphs.draw_torch_graph(ax, loss, {"w1": w1, "b1": b1, "w2": w2, "b2": b2})
ax.set_title("autograd graph of the tanh network's loss (walked from loss.grad_fn)", fontsize=10)
plt.show()


# %% [markdown]
# ### Accumulation is a feature: the gradient of a sum of mini-batch losses
#
# Because `backward()` adds into `.grad`, calling it once per mini-batch **without zeroing in
# between** leaves the gradient of the *sum* of the losses in `.grad`. This is useful when a large
# batch does not fit in memory. The same behaviour is a bug in an ordinary training loop, so
# `model.zero_grad()` comes before every `backward()` there.
#
# Write `accumulated_gradient(model, loss_fn, batches)`: start from zero gradients, call
# `loss_fn(model(x), y).backward()` once per batch, collect a copy of every parameter's `.grad`
# (in `model.parameters()` order), and leave the model's `.grad` fields zeroed (zero tensors or
# `None` are both fine).

# %% deletable=false nbgrader={"grade": false, "grade_id": "accumulated_gradient", "locked": false, "schema_version": 3, "solution": true, "task": false}
def accumulated_gradient(model, loss_fn, batches):
    """[d/dp sum_k loss_fn(model(x_k), y_k) for p in model.parameters()], by accumulating .grad."""
    ### BEGIN SOLUTION
    params = list(model.parameters())
    model.zero_grad(set_to_none=True)
    for xb, yb in batches:
        loss_fn(model(xb), yb).backward()
    total = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    model.zero_grad(set_to_none=False)
    return total
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_accumulated_gradient", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# accumulated_gradient: equals the gradient of the summed loss (autograd, float64), in parameter order; .grad left zeroed.
# Your function gets a copy of the test's model (graphs.build_sequential), a loss function that counts its calls and
# the batches as an iterator that can be walked once.
def _check_accumulated(model, loss_name, batches, what, stale=False):
    loss_fn = getattr(torch.nn.functional, loss_name)
    # the student's copy; with stale=True, leftovers from an earlier step that must not leak into the result
    student = graphs.build_sequential(*graphs.sequential_spec(model), grad_fill=7.0 if stale else None)
    counted_loss = graphs.counted(loss_name)
    got = checks.call(accumulated_gradient, student, counted_loss, graphs.one_pass(batches))
    params = list(model.parameters())
    total = sum(loss_fn(model(xb), yb) for xb, yb in batches)
    want = torch.autograd.grad(total, params)
    if not isinstance(got, (list, tuple)) or len(got) != len(params):
        raise AssertionError(f"{what}: expected a list of {len(params)} tensors, one per parameter, got "
                             f"{type(got).__name__} (diagnosis: wrong_shape)")
    calls = graphs.calls_of(counted_loss)
    if calls != len(batches):
        raise AssertionError(f"{what}: loss_fn was called {calls} times for {len(batches)} batches "
                             "(diagnosis: batches)")
    for (name, _), g, w in zip(model.named_parameters(), got, want):
        if stale and checks.close(g, w + 7.0):
            raise AssertionError(f"{what}: {name} still contains the gradient left over from before the call; zero "
                                 "the gradients first (diagnosis: stale_grad)")
        checks.assert_close(g, w, name=f"{what}: gradient of {name}")
    for (name, value, grad), p in zip(graphs.parameter_state(student), params):
        if not torch.equal(value, p.detach()):
            raise AssertionError(f"{what}: parameter {name} was changed; only gradients are asked for (diagnosis: modified_input)")
        if grad is not None and bool((grad != 0).any()):
            raise AssertionError(f"{what}: {name}.grad is not zeroed after the call (diagnosis: grad_not_zeroed)")


torch.manual_seed(42)
_model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
_batches = [(torch.randn(b, 3, dtype=torch.float64), torch.randn(b, 2, dtype=torch.float64)) for b in (5, 1, 3)]
_check_accumulated(_model, "mse_loss", _batches, "three batches of sizes 5, 1, 3")
print("accumulated_gradient returns the gradient of the summed loss and leaves .grad zeroed.")
### BEGIN HIDDEN TESTS
torch.manual_seed(4114)
_model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).double()
_batches = [(torch.randn(b, 4, dtype=torch.float64), torch.randint(0, 3, (b,))) for b in (1, 7, 2, 4)]
_check_accumulated(_model, "cross_entropy", _batches, "four classification batches")
_check_accumulated(_model, "cross_entropy", _batches, "with stale gradients before the call", stale=True)
_check_accumulated(_model, "cross_entropy", _batches[:1], "a single batch of size 1")
### END HIDDEN TESTS

# %% [markdown]
# On the digits: four mini-batches accumulated, against one `backward()` on the sum of the four
# losses. They agree up to rounding.

# %%
with needs("accumulated_gradient"):
    xd, yd = data.load_digits()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    batches = [(xd[i : i + 128], yd[i : i + 128]) for i in range(0, 512, 128)]
    accumulated = accumulated_gradient(model, torch.nn.functional.cross_entropy, batches)
    summed = sum(torch.nn.functional.cross_entropy(model(xb), yb) for xb, yb in batches)
    at_once = torch.autograd.grad(summed, list(model.parameters()))
    for (name, _), g_acc, g_one in zip(model.named_parameters(), accumulated, at_once):
        print(f"{name:9} max |accumulated - summed| = {(g_acc - g_one).abs().max().item():.2e}")

# %% [markdown]
# ### `detach`, and in-place operations
#
# `detach()` returns a tensor that shares the data but is cut from the graph: no gradient flows
# through it. Use it to stop the gradient at some point, or to update parameters outside autograd,
# like Fleuret's hand-written step `p.detach().sub_(eta * p.grad)`.

# %%
w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
y_out = (w * w).sum() + (w.detach() * 3.0).sum()  # the second term is a constant for autograd
y_out.backward()
print("gradient through w * w only:", w.grad, "(2 w; the detached term contributes nothing)")
w.detach().sub_(0.1 * w.grad)  # an update that autograd does not record
print("after the step w =", w.data, "| still a leaf:", w.is_leaf)

# %% [markdown]
# An in-place operation overwrites a value that the backward pass may need. Autograd keeps a version
# counter on every tensor and refuses to use a saved tensor that has changed since it was saved.
# Whether `y += 1` is harmless depends on what the operation that produced `y` saved:
#
# * `y = x.sin()` saves its **input** `x`, because the derivative $\cos x$ needs `x`. Changing `y`
#   afterwards touches nothing that was saved, so `y += 1` is harmless (Fleuret's lecture shows
#   this case).
# * `y = x.exp()` saves its **output** `y`, because the derivative of $e^x$ is $e^x$ itself (your
#   `Value.exp` does the same with `out.data`). Now `y += 1` changes a saved tensor, and `backward()`
#   refuses.
# * `y *= y` on `y = x.sin()`: the product saves both operands, which are `y`, then overwrites `y`.
#
# In-place operations on a leaf that requires grad are refused at once.

# %%
x = torch.tensor([1.0, 2.0, 3.0]).requires_grad_()


def sin_then_add():  # sin saved its input x, not y
    y_in = x.sin()
    y_in += 1
    y_in.sum().backward()
    return x.grad


def exp_then_add():  # exp saved its output y, which += changes
    y_in = x.exp()
    y_in += 1
    y_in.sum().backward()
    return x.grad


def square_in_place():
    y_sq = x.sin()
    y_sq *= y_sq  # the product saved y_sq for its backward, then overwrote it
    y_sq.sum().backward()
    return x.grad


def add_to_leaf():
    x.add_(1)


for label, action in [("y = x.sin(); y += 1; backward()", sin_then_add),
                      ("y = x.exp(); y += 1; backward()", exp_then_add),
                      ("y = x.sin(); y *= y; backward()", square_in_place), ("x.add_(1) on a leaf", add_to_leaf)]:
    x.grad = None
    try:
        grad = action()
        print(f"{label}: fine, x.grad = {grad}")
    except RuntimeError as exc:
        print(f"{label}: RuntimeError: {str(exc).splitlines()[0][:150]}")

# %% [markdown]
# ## 8. Bug hunt: a checker for topological orders
#
# Turn the grading around: write the check. `check_topological_order(candidate)` receives a function
# with the signature of your `topological_order(root)` and returns `True` if it is a right one and
# `False` if it is wrong. A right one, for every `root`, returns a list of every node reachable from
# `root` through `_prev`, each exactly once, each after all of its parents, with `root` last, and
# never recurses, so that a chain 100,000 nodes deep works.
#
# Build the graphs yourself. Nodes can be your `Value`s, or any small objects with a `_prev` tuple
# (a class of three lines is enough). The candidates only walk `_prev` and compare nodes by identity.
# Think about the graphs on which each mistake shows: a single leaf, a node used twice by one
# operation (`a + a`), a diamond, a node used both directly and through a longer path, random graphs,
# and one very deep chain. A candidate that raises an exception is wrong: catch it and return
# `False`. Return a Python `bool`.
#
# It is graded on hidden candidates: several right ones written in different ways (explicit stack,
# Kahn's algorithm, ...) and eight wrong ones, with at most 5 s for each call of your check and 45 s
# for all of them (a chain of 100,000 nodes takes well under a second). If your check rejects a right one, it scores 0.
# Otherwise it earns the points in proportion to the wrong ones it rejects.

# %% deletable=false nbgrader={"grade": false, "grade_id": "check_topological_order", "locked": false, "schema_version": 3, "solution": true, "task": false}
def check_topological_order(candidate):
    """True if candidate(root) lists every node reachable from root once, each after its parents, root last."""
    ### BEGIN SOLUTION
    class Node:
        def __init__(self, *parents):
            self._prev = parents

    def reachable(root):
        found, todo = {id(root): root}, [root]
        while todo:
            for p in todo.pop()._prev:
                if id(p) not in found:
                    found[id(p)] = p
                    todo.append(p)
        return found

    def is_right_on(root):
        try:
            order = list(candidate(root))
        except Exception:  # a crash (RecursionError included) means the candidate is wrong
            return False
        nodes = reachable(root)
        if len(order) != len(nodes) or {id(n) for n in order} != set(nodes) or order[-1] is not root:
            return False
        where = {id(n): i for i, n in enumerate(order)}
        return all(where[id(p)] < where[id(n)] for n in order for p in n._prev)

    def small_graphs():
        yield Node()  # a single leaf
        a = Node()
        yield Node(a, a)  # a node used twice by one operation
        x = Node()
        yield Node(Node(x), Node(x))  # a diamond
        x = Node()
        yield Node(x, Node(Node(x)))  # x used directly and through a longer path
        rng = random.Random(4)
        for _ in range(30):
            nodes = [Node() for _ in range(rng.randint(1, 3))]
            for _ in range(rng.randint(1, 12)):
                nodes.append(Node(*(rng.choice(nodes) for _ in range(rng.randint(1, 3)))))
            yield nodes[-1]

    if not all(is_right_on(root) for root in small_graphs()):
        return False
    deep = Node()
    for _ in range(100_000):
        deep = Node(deep)
    return is_right_on(deep)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_check_topological_order", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# check_topological_order on hidden candidates (4 right, 8 wrong), each call limited to 5 s and all calls to 45 s:
# 0 points if a right candidate is not accepted, else 0.5 point per wrong candidate rejected. Partial credit: the
# cell's last expression is the number of points earned, which nbgrader 0.9.6 records as the cell's score
# (nbgrader.utils.determine_grade reads an execute_result that is a number as partial credit).
_fn = bug_hunt_lab4.order_function("leaves dropped")  # made where your check runs, like every candidate here
try:
    _verdict = bug_hunt_lab4.ask(check_topological_order, bug_hunt_lab4.Candidate("leaves dropped", _fn, False), 5.0)
except NotImplementedError:
    raise AssertionError("check_topological_order is not written yet: replace the NotImplementedError with your code "
                         "(diagnosis: not_implemented)") from None
if _verdict.answer is None:
    raise AssertionError(f"check_topological_order {_verdict.note}; it must return True or False within 5 s "
                         "(diagnosis: not_a_bool)")
print(f"check_topological_order answers with a bool ({_verdict.answer} for an order that drops the leaves). "
      "It is graded on hidden candidates.")
### BEGIN HIDDEN TESTS
_C = bug_hunt_lab4.Candidate
_O = bug_hunt_lab4.order_function
_candidates = [
    _C("explicit stack with an expanded flag", _O("flagged stack"), True),
    _C("Kahn's algorithm on the reachable nodes", _O("kahn"), True),
    _C("two passes, iterators over reversed parents", _O("two passes"), True),
    _C("stack with lazy marks", _O("lazy marks"), True),
    _C("recursive depth-first search", _O("recursive, marked"), False, "recursion"),
    _C("no seen set: a diamond's node twice", _O("flagged stack, unmarked"), False, "visited_twice"),
    _C("root first", _O("kahn, root first"), False, "order"),
    _C("repeated parents never released", _O("kahn, distinct release"), False, "missing_nodes"),
    _C("reversed order", _O("flagged stack, reversed"), False, "order"),
    _C("leaves dropped", _O("lazy marks, computed nodes only"), False, "missing_nodes"),
    _C("levels from the root, reversed", _O("levels, reversed"), False, "order"),
    _C("pre-order, reversed", _O("pre-order, reversed"), False, "order"),
]
with graphs.paused_gc():
    _points = bug_hunt_lab4.score(check_topological_order, _candidates, 4, seconds=5.0, total=45.0)
_points
### END HIDDEN TESTS

# %% [markdown]
# Your check on the four planted bugs, each named by the mistake it makes. A good check rejects
# all four.

# %%
with needs("check_topological_order"), graphs.paused_gc():
    planted = [bug_hunt_lab4.Candidate(name, fn, False, tag) for name, (fn, tag) in bug_hunt_lab4.planted_bugs().items()]
    verdicts = [bug_hunt_lab4.ask(check_topological_order, c, 5.0) for c in planted]
    print(bug_hunt_lab4.verdict_table(verdicts))
    for v in verdicts:
        print(f"  {v.candidate.name}: diagnosis `{v.candidate.tag}`, {checks.DIAGNOSES[v.candidate.tag]}")


# %% [markdown]
# ## 9. Two questions in words
#
# Answer each question in a few sentences in the cell below it. A person grades them.
#
# **Question 1.** A network's loss is one number computed from a million parameters. Explain why one
# reverse sweep gives all million partial derivatives for about the cost of a few forward passes, while
# forward mode (your `Dual` numbers) would need a million passes. When would forward mode be the
# better choice? Use the measurement of part 5.

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_reverse_mode", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Forward mode carries the derivative with respect to **one** chosen input (one direction) along
# with every value, so one pass gives one column of the Jacobian: a gradient over $n$ inputs needs $n$
# passes, about $n$ times the cost of the function ($O(n^2)$ for the ring function of part 5, slope 2
# on the log-log plot). Reverse mode propagates the derivative of **one output** with respect to every
# intermediate node, from the output back to the inputs: after one forward pass (which records the
# graph) and one backward pass, each costing a small constant times the forward computation, every
# input's adjoint is known (slope 1). With one scalar loss and a million parameters that is a factor
# of about a million. The price is memory: the forward values must be kept for the sweep. Forward mode
# is the better choice when there are few inputs and many outputs (a Jacobian with few columns), or
# for a single directional derivative (a Jacobian-vector product) without storing the graph.
# ### END SOLUTION

# %% [markdown]
# **Question 2.** Every `_backward` rule you wrote adds into the parents' `grad` with `+=`. Why is
# `=` wrong? Give one example from this lab where `=` gives a wrong gradient, and say what this
# has to do with weight sharing (`w1` in part 6) and with the `.grad` of `torch` leaves.

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_accumulate", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# By the multivariate chain rule, the adjoint of a node is the **sum** over all the nodes that use it:
# $\bar x_i = \sum_{j : i \in \pi(j)} \bar x_j \, \partial x_j / \partial x_i$. In the push form,
# each use sends its own term, at a different moment of the sweep, so the node must add them up;
# `=` keeps only the last term that arrived. Examples: `a + a` gives `a.grad = 1` instead of 2 with
# `=`; in $L = (xy + x)^2$ the adjoint of $x$ is 12 (through $m = xy$) plus $-6$ (directly), 6 in
# total, and `=` would give one of the two; in the reverse-mode table of part 3, $\partial y / \partial x_2 = 1.716$
# is $-0.284$ through the sine plus 2 through the product. Weight sharing is the same thing for tensors:
# `w1` is used by two matrix products, its gradient is the sum of the two contributions, and autograd
# adds them into `w1.grad`. Because `.backward()` adds into the leaves' `.grad` too, calling it
# several times sums the gradients (useful for mini-batches that do not fit in memory), which is why
# a training loop must call `zero_grad()` before each `backward()`.
# ### END SOLUTION


# %% [markdown]
# ## Summary
#
# * Reverse mode is one ordered sweep: sort the graph so that every node comes after its parents,
#   seed the output with 1, and let each node push `grad * local derivative` into its parents with
#   `+=`. Sharing (the same `Value` used twice, or `w1` used twice) needs no special case: the
#   contributions add up.
# * The order must be computed without recursion, or deep graphs break.
# * Those few rules are enough to train a network: `Neuron`, `Layer` and `MLP` are lists of `Value`s,
#   and a training step is a forward pass, `zero_grad()`, `backward()` and `p.data -= eta * p.grad`.
# * Forward mode gives one directional derivative per pass. A gradient over $n$ inputs costs $n$
#   passes, against one backward pass in reverse mode.
# * `torch` does the same on tensors. It records `grad_fn` nodes while the forward runs, and
#   `backward()` adds gradients into the leaves' `.grad`. That accumulation is why `zero_grad` exists,
#   and also how gradients over several mini-batches are summed. `autograd.grad` returns gradients
#   without touching `.grad`, `detach` cuts the graph, and in-place changes to saved tensors are
#   refused.

# %% [markdown]
# ## Sources and further reading
#
# The lectures this lab draws on (facts, formulas and examples; the text and code here are new):
#
# * François Fleuret, *Deep Learning #3 – MLP, backprop, autograd*, IfI Summer School 2018 on Machine
#   Learning, June 26, 2018, <http://fleuret.org/ifi/>. The DAG $x^{(1)} = w^{(1)} x$, ... with
#   $w^{(1)}$ used twice, weight sharing and siamese networks, `requires_grad`, leaves, accumulation,
#   `detach`, the in-place error, the data-dependent graph.
# * *Applied Deep Learning: Training Neural Networks* (gradient descent, the chain rule, automatic
#   differentiation as primitives with parents, writing your own operator).
# * *Mathematics of Data* (Volkan Cevher, EPFL), recitation "Brief intro into tensors, backpropagation,
#   automatic differentiation & PyTorch": the reverse-mode table and the $O(k m^2)$ cost of backprop.
# * The computation-graph lecture starting from *Neural Network View of a Linear Classifier* (figures
#   after Fei-Fei Li, Justin Johnson and Serena Yeung's CS 231n, and after Marc'Aurelio Ranzato and
#   Yann LeCun): gradient-flow patterns, forward mode, the logistic-regression graph.
# * Rémy Sun, *Lecture 9: Backpropagation*, Optimization for data sciences, Université Côte d'Azur.
#
# Further reading:
#
# * Andrej Karpathy, **micrograd** (<https://github.com/karpathy/micrograd>): a scalar autograd engine
#   (`engine.py`) and a small neural-network library (`nn.py`) whose API part 4 follows, with the
#   two-moons demo and its max-margin loss. Its topological sort is recursive; yours is not.
# * Andreas Griewank and Andrea Walther, *Evaluating Derivatives: Principles and Techniques of
#   Algorithmic Differentiation*, 2nd edition, SIAM, 2008: forward and reverse mode, their costs,
#   and the memory reverse mode needs.
# * Atılım Güneş Baydin, Barak A. Pearlmutter, Alexey Andreyevich Radul and Jeffrey Mark Siskind,
#   "Automatic differentiation in machine learning: a survey", *Journal of Machine Learning Research*
#   18(153):1–43, 2018: the source of the reverse-mode table of part 3.
# * The PyTorch documentation, "Autograd mechanics": how the graph is recorded, saved tensors and
#   their version counters, and in-place operations.
