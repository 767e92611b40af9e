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
# # Lab 1 — Threshold units and the perceptron
#
# This lab starts where neural networks started: with a unit that adds up its inputs and fires when
# the sum crosses a threshold. You will
#
# 1. build Boolean gates out of threshold units (McCulloch and Pitts, 1943), and see why `xor` needs two layers;
# 2. write Rosenblatt's perceptron algorithm (1957) and watch it move a separating line, one update at a time;
# 3. train it on handwritten digits ("0" versus "1"), epoch by epoch;
# 4. hit the wall of linear separability, and get around it by **designing features**: first for `xor`,
#    then for "8" versus every other digit, where adding features raises the model's capacity;
# 5. look ahead, "from linear to deep": why layers need a non-linearity, and what one hidden layer of
#    smooth units can fit.
#
# **The lectures.** The lab follows François Fleuret's lecture *Deep Learning #3 – MLP, backprop,
# autograd* (IfI Summer School 2018 on Machine Learning, 26 June 2018; "Fleuret's lecture" below) for
# threshold units, the perceptron, xor, feature design and the MLP, and the lecture *Neural Network View
# of a Linear Classifier* (its transcript names no lecturer or course; its figures are adapted from
# slides by Fei-Fei Li, Justin Johnson and Serena Yeung, CS 231n) for neurons and layers. Other sources are listed at the end.
#
# Every exercise has a cell that says `raise NotImplementedError()`: replace that line with your code,
# run the cell, then run the check below it. A check that fails tells you what went wrong in words.
# Exercise 7 asks you to **predict** an outcome before running the experiment, and Exercises 10 and 11
# are short **written answers** that a person grades.
#
# **Conventions.** Data sets are tensors `x` of shape `(N, D)` (one row per sample); labels for the
# perceptron are `y` in `{-1., +1.}` of shape `(N,)`. Every function keeps the dtype of its inputs and
# never modifies them.
#
# Only the exercise cells are graded: put any helper function you write inside the exercise's cell.

# %%
import matplotlib.pyplot as plt
import torch
from backproplab import checks, data, env, linear_to_deep, needs, perceptron_runs, plots, widgets
from IPython.display import display

# %%
env.check_environment()


# %% [markdown]
# ## 1. Threshold units
#
# A **threshold logic unit** with weights $w \in \mathbb{R}^D$ and bias $b$ computes
#
# $$f(x) = \mathbf{1}\{\, w \cdot x + b \ge 0 \,\}.$$
#
# Note the `>=`: a point exactly on the boundary $w \cdot x + b = 0$ gives 1. With a batch of inputs
# `x` of shape `(N, D)`, the same formula applies row by row and gives `N` outputs.
#
# **Exercise 1.** Write `threshold_unit(x, w, b)`. `x` has shape `(D,)` or `(N, D)`, `w` has shape
# `(D,)`, `b` is a number. Return a float tensor (the dtype of `x`) of 1. and 0., of shape `()` or `(N,)`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "threshold_unit", "locked": false, "schema_version": 3, "solution": true, "task": false}
def threshold_unit(x, w, b):
    """f(x) = 1{x . w + b >= 0}, for one sample (D,) or a batch (N, D)."""
    ### BEGIN SOLUTION
    return (x @ w + b >= 0).to(x.dtype)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_threshold_unit", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Checks threshold_unit on one sample and on a batch: values, the >= at the boundary, shape and dtype.
w = torch.tensor([1.0, -2.0])
one = checks.call(threshold_unit, torch.tensor([3.0, 1.0]), w, 0.0)
checks.assert_close(one, torch.tensor(1.0), name="threshold_unit(one sample with x.w + b = 1)")
batch = torch.tensor([[3.0, 1.0], [0.0, 1.0], [2.0, 1.0], [0.0, 0.0]])
# x.w + b with b = -0.5: 0.5, -2.5, -0.5, -0.5
checks.assert_close(checks.call(threshold_unit, batch, w, -0.5), torch.tensor([1.0, 0.0, 0.0, 0.0]),
                    name="threshold_unit(batch)")
on_boundary = checks.call(threshold_unit, torch.tensor([[2.0, 1.0]]), w, 0.0)  # x.w + b == 0 exactly
if float(on_boundary.reshape(-1)[0]) != 1.0:
    raise AssertionError("threshold_unit: x.w + b == 0 must give 1 (the test is >= 0, not > 0) (diagnosis: values)")
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(11)
for _dtype in (torch.float32, torch.float64):
    for _n, _d in [(1, 3), (7, 5), (30, 2)]:
        _x = torch.randn(_n, _d, generator=_g, dtype=_dtype)
        _w = torch.randn(_d, generator=_g, dtype=_dtype)
        _b = float(torch.randn((), generator=_g))
        _x_before = _x.clone()
        _expected = torch.tensor([1.0 if float(sum(_x[i, j] * _w[j] for j in range(_d))) + _b >= 0 else 0.0
                                  for i in range(_n)], dtype=_dtype)
        checks.assert_close(checks.call(threshold_unit, _x, _w, _b), _expected, name=f"threshold_unit({_n}x{_d} {_dtype})")
        checks.assert_close(checks.call(threshold_unit, _x[0], _w, _b), _expected[0], name=f"threshold_unit(one sample, {_dtype})")
        if not torch.equal(_x, _x_before):
            raise AssertionError("threshold_unit modified its input x (diagnosis: modified_input)")
### END HIDDEN TESTS

# %% [markdown]
# ### Boolean gates from single units
#
# For inputs $a, b \in \{0, 1\}$, one unit is enough for each of these gates (the weights of Fleuret's
# lecture, after McCulloch and Pitts, 1943):
#
# | gate | unit |
# | --- | --- |
# | $\mathrm{or}(a, b)$ | $\mathbf{1}\{a + b - 0.5 \ge 0\}$ |
# | $\mathrm{and}(a, b)$ | $\mathbf{1}\{a + b - 1.5 \ge 0\}$ |
# | $\mathrm{not}(a)$ | $\mathbf{1}\{-a + 0.5 \ge 0\}$ |
#
# Since `and`, `or` and `not` can express any Boolean function, networks of threshold units can too.
#
# **Exercise 2.** Write `logic_and`, `logic_or` and `logic_not`, each with **one** call to your
# `threshold_unit`. The inputs are float tensors of 0. and 1., all of the same shape (any shape, a
# single number included); the output has that shape. Hint: `torch.stack([a, b], dim=-1)` puts the two
# inputs side by side as the last dimension, which is what `x @ w` needs.

# %% deletable=false nbgrader={"grade": false, "grade_id": "logic_and", "locked": false, "schema_version": 3, "solution": true, "task": false}
def logic_and(a, b):
    """and(a, b) = 1{a + b - 1.5 >= 0}, elementwise."""
    ### BEGIN SOLUTION
    return threshold_unit(torch.stack([a, b], dim=-1), torch.tensor([1.0, 1.0], dtype=a.dtype), -1.5)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_logic_and", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Checks the truth table of logic_and on a batch of the four input pairs.
a = torch.tensor([0.0, 0.0, 1.0, 1.0])
b = torch.tensor([0.0, 1.0, 0.0, 1.0])
checks.assert_close(checks.call(logic_and, a, b), torch.tensor([0.0, 0.0, 0.0, 1.0]), name="logic_and(truth table)")
### BEGIN HIDDEN TESTS
checks.assert_close(checks.call(logic_and, torch.tensor(1.0), torch.tensor(1.0)), torch.tensor(1.0), name="logic_and(scalars)")
_a = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
_b = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64)
checks.assert_close(checks.call(logic_and, _a, _b), _a * _b, name="logic_and(2x3 float64)")
### END HIDDEN TESTS

# %% deletable=false nbgrader={"grade": false, "grade_id": "logic_or", "locked": false, "schema_version": 3, "solution": true, "task": false}
def logic_or(a, b):
    """or(a, b) = 1{a + b - 0.5 >= 0}, elementwise."""
    ### BEGIN SOLUTION
    return threshold_unit(torch.stack([a, b], dim=-1), torch.tensor([1.0, 1.0], dtype=a.dtype), -0.5)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_logic_or", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Checks the truth table of logic_or on a batch of the four input pairs.
a = torch.tensor([0.0, 0.0, 1.0, 1.0])
b = torch.tensor([0.0, 1.0, 0.0, 1.0])
checks.assert_close(checks.call(logic_or, a, b), torch.tensor([0.0, 1.0, 1.0, 1.0]), name="logic_or(truth table)")
### BEGIN HIDDEN TESTS
checks.assert_close(checks.call(logic_or, torch.tensor(0.0), torch.tensor(0.0)), torch.tensor(0.0), name="logic_or(scalars)")
_a = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
_b = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
checks.assert_close(checks.call(logic_or, _a, _b), torch.maximum(_a, _b), name="logic_or(2x3 float64)")
### END HIDDEN TESTS

# %% deletable=false nbgrader={"grade": false, "grade_id": "logic_not", "locked": false, "schema_version": 3, "solution": true, "task": false}
def logic_not(a):
    """not(a) = 1{-a + 0.5 >= 0}, elementwise."""
    ### BEGIN SOLUTION
    return threshold_unit(a.unsqueeze(-1), torch.tensor([-1.0], dtype=a.dtype), 0.5)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_logic_not", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Checks logic_not on both inputs.
checks.assert_close(checks.call(logic_not, torch.tensor([0.0, 1.0])), torch.tensor([1.0, 0.0]), name="logic_not")
### BEGIN HIDDEN TESTS
checks.assert_close(checks.call(logic_not, torch.tensor(1.0)), torch.tensor(0.0), name="logic_not(scalar)")
_a = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
checks.assert_close(checks.call(logic_not, _a), 1 - _a, name="logic_not(2x3 float64)")
### END HIDDEN TESTS

# %% [markdown]
# ### xor needs two layers
#
# `xor(a, b)` is 1 when exactly one input is 1. No single line separates $\{(0,1), (1,0)\}$ from
# $\{(0,0), (1,1)\}$, so no single threshold unit computes it (we will see the perceptron fail on it
# below). Two layers are enough: for instance $\mathrm{xor}(a, b) = \mathrm{and}(\mathrm{or}(a, b),\ \mathrm{not}(\mathrm{and}(a, b)))$,
# where the first layer computes `or` and `nand` side by side and the second combines them.
#
# **Exercise 3.** Write `logic_xor(a, b)` using only threshold units: your `threshold_unit` directly,
# or the gates above. Same conventions as the gates.

# %% deletable=false nbgrader={"grade": false, "grade_id": "logic_xor", "locked": false, "schema_version": 3, "solution": true, "task": false}
def logic_xor(a, b):
    """xor(a, b) = and(or(a, b), nand(a, b)): two layers of threshold units."""
    ### BEGIN SOLUTION
    x = torch.stack([a, b], dim=-1)
    one = torch.ones(2, dtype=a.dtype)
    hidden_or = threshold_unit(x, one, -0.5)
    hidden_nand = threshold_unit(x, -one, 1.5)
    return threshold_unit(torch.stack([hidden_or, hidden_nand], dim=-1), one, -1.5)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_logic_xor", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Checks the truth table of logic_xor.
a = torch.tensor([0.0, 0.0, 1.0, 1.0])
b = torch.tensor([0.0, 1.0, 0.0, 1.0])
checks.assert_close(checks.call(logic_xor, a, b), torch.tensor([0.0, 1.0, 1.0, 0.0]), name="logic_xor(truth table)")
### BEGIN HIDDEN TESTS
checks.assert_close(checks.call(logic_xor, torch.tensor(1.0), torch.tensor(0.0)), torch.tensor(1.0), name="logic_xor(scalars)")
_a = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
_b = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
checks.assert_close(checks.call(logic_xor, _a, _b), (_a != _b).to(torch.float64), name="logic_xor(2x3 float64)")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Rosenblatt's perceptron
#
# The perceptron is a threshold unit whose inputs are real numbers and whose weights are *learned*
# from examples $(x_n, y_n) \in \mathbb{R}^D \times \{-1, +1\}$. Rosenblatt's algorithm, as Fleuret's
# lecture states it:
#
# 1. start with $w^0 = 0$;
# 2. while some sample is on the wrong side, $y_n\,(w^k \cdot x_n) \le 0$, update $w^{k+1} = w^k + y_n x_n$.
#
# An update moves $w$ towards $x_n$ when $y_n = +1$ and away from it when $y_n = -1$: after it,
# $y_n (w^{k+1} \cdot x_n) = y_n (w^k \cdot x_n) + \|x_n\|^2$, so that sample is "less wrong".
# The condition uses `<= 0` so that the very first sample, met with $w = 0$, triggers an update.
#
# **The bias as a weight.** The bias $b$ disappears if every $x$ gets an extra component equal to 1:
# $w \cdot x + b = (w, b) \cdot (x, 1)$.
#
# **Convergence.** If the two classes are linearly separable with a margin $\gamma$ (some unit vector
# $w^*$ has $y_n (w^* \cdot x_n) \ge \gamma$ for all $n$) and $\|x_n\| \le R$, the algorithm makes at most
# $R^2 / \gamma^2$ updates (Novikoff, 1962). If they are not separable, it never stops on its own: that
# is why we cap the number of epochs.
#
# **Exercise 4.** Write `add_bias_column(x)`: `(N, D)` to `(N, D+1)`, the last column all ones, same dtype.

# %% deletable=false nbgrader={"grade": false, "grade_id": "add_bias_column", "locked": false, "schema_version": 3, "solution": true, "task": false}
def add_bias_column(x):
    """(N, D) -> (N, D+1): [x, 1]."""
    ### BEGIN SOLUTION
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_add_bias_column", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Checks the shape, the column of ones, the dtype, and that x is left unchanged.
x = torch.arange(6.0).reshape(3, 2)
checks.assert_close(checks.call(add_bias_column, x), torch.tensor([[0.0, 1.0, 1.0], [2.0, 3.0, 1.0], [4.0, 5.0, 1.0]]),
                    name="add_bias_column")
### BEGIN HIDDEN TESTS
_x = torch.randn(5, 4, dtype=torch.float64)
_x_before = _x.clone()
checks.assert_close(checks.call(add_bias_column, _x), torch.cat([_x_before, torch.ones(5, 1, dtype=torch.float64)], 1),
                    name="add_bias_column(float64)")
if not torch.equal(_x, _x_before):
    raise AssertionError("add_bias_column modified its input (diagnosis: modified_input)")
checks.assert_close(checks.call(add_bias_column, torch.ones(1, 1)), torch.ones(1, 2), name="add_bias_column(1x1)")
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 5.** Write `train_perceptron(x, y, nb_epochs_max)`:
#
# - `w` starts at `torch.zeros(D)` in `x`'s dtype;
# - each epoch visits `i = 0, 1, ..., N-1` **in order**; if `y[i] * (x[i] @ w) <= 0`, then `w = w + y[i] * x[i]`;
# - stop after the first epoch with no update, or after `nb_epochs_max` epochs;
# - return `w`, shape `(D,)`.
#
# The bias is not special here: pass `add_bias_column(x)` if you want one. Fleuret's lecture writes this
# function in ten lines; the checks call it, as that code expects, with float32 tensors and three
# positional arguments.

# %% deletable=false nbgrader={"grade": false, "grade_id": "train_perceptron", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_perceptron(x, y, nb_epochs_max):
    """Rosenblatt: w = 0; for each misclassified x[i] (y[i] x[i].w <= 0), w += y[i] x[i]."""
    ### BEGIN SOLUTION
    w = torch.zeros(x.shape[1], dtype=x.dtype)
    for _ in range(nb_epochs_max):
        nb_updates = 0
        for i in range(x.shape[0]):
            if y[i] * (x[i] @ w) <= 0:
                w = w + y[i] * x[i]
                nb_updates += 1
        if nb_updates == 0:
            break
    return w
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_train_perceptron", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# Checks train_perceptron on a tiny data set worked out by hand, that it stops after the first epoch
# with no update, and that it separates separable data. Every check calls it as the contract says:
# float32 tensors and exactly three positional arguments (x, y, nb_epochs_max).
x = torch.tensor([[1.0, 2.0, 1.0], [2.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])
y = torch.tensor([1.0, -1.0, -1.0])
# By hand: w=0 -> update on sample 0 (w=[1,2,1]); sample 1: y*(x.w) = -1*(2-2+1) = -1 -> update, w=[-1,3,0];
# sample 2: -1*(1-3+0) = 2 > 0, no update. Epoch 2: sample 0: 1*(-1+6) > 0; 1: -1*(-2-3) > 0; 2: -1*(1-3) > 0.
# No update in epoch 2: stop.
w = checks.call(train_perceptron, x, y, 10)
if isinstance(w, torch.Tensor) and w.shape == (3,) and w.is_floating_point() and not bool(w.any()):
    raise AssertionError("train_perceptron returned w = 0 on data where it must move: from w = 0 every sample has "
                         "y[i] * (x[i] @ w) = 0, which must trigger an update (update when <= 0, the line included) "
                         "(diagnosis: zero)")
checks.assert_close(w, torch.tensor([-1.0, 3.0, 0.0]), name="train_perceptron(3 samples worked out by hand)")
w1 = checks.call(train_perceptron, x, y, 1)
checks.assert_close(w1, torch.tensor([-1.0, 3.0, 0.0]), name="train_perceptron(same data, nb_epochs_max=1)")
_g = torch.Generator().manual_seed(0)
pts, labels = data.linearly_separable(60, margin=0.1, generator=_g)
xs, ys = torch.cat([pts, torch.ones(60, 1)], 1), labels.float() * 2 - 1
# a cap of a million epochs: a correct perceptron stops by itself after a few, as soon as an epoch is clean
with checks.time_limit(10, "train_perceptron", "does it stop after the first epoch with no update?"):
    w = checks.call(train_perceptron, xs, ys, 1_000_000)
wrong = int((ys * (xs @ w) <= 0).sum())
if wrong:
    raise AssertionError(f"train_perceptron: on linearly separable data {wrong} of 60 samples remain on the wrong side "
                         "after training; it should stop only when an epoch makes no update (diagnosis: values)")
### BEGIN HIDDEN TESTS
def _rosenblatt(x, y, nb_epochs_max):
    w = torch.zeros(x.shape[1], dtype=torch.float32)
    rows, labels = [torch.tensor(r, dtype=torch.float32) for r in x.tolist()], y.tolist()
    for _ in range(nb_epochs_max):
        changed = False
        for row, label in zip(rows, labels):
            if label * float(torch.dot(row, w)) <= 0:
                w = w + label * row
                changed = True
        if not changed:
            break
    return w

_g = torch.Generator().manual_seed(5)
for _n, _d, _epochs in [(1, 3, 5), (1, 1, 2), (25, 4, 3), (40, 6, 1), (50, 3, 7)]:
    _x = torch.randn(_n, _d, generator=_g)
    _y = torch.where(torch.rand(_n, generator=_g) < 0.5, -1.0, 1.0)  # random labels: usually not separable
    _x_before, _y_before = _x.clone(), _y.clone()
    with checks.time_limit(20, "train_perceptron", "does it stop after nb_epochs_max epochs?"):
        _w = checks.call(train_perceptron, _x, _y, _epochs)
    checks.assert_close(_w, _rosenblatt(_x, _y, _epochs), name=f"train_perceptron({_n}x{_d}, nb_epochs_max={_epochs})")
    if not (torch.equal(_x, _x_before) and torch.equal(_y, _y_before)):
        raise AssertionError("train_perceptron modified x or y (diagnosis: modified_input)")
# separable data with a bias column, stopped early by the cap and run to the end
_p, _l = data.linearly_separable(30, margin=0.05, generator=_g)
_xb = torch.cat([_p + torch.tensor([0.3, -0.2]), torch.ones(30, 1)], 1)
_yb = _l.float() * 2 - 1
for _epochs in (1, 2, 500):
    with checks.time_limit(20, "train_perceptron", "does it stop after the first epoch with no update?"):
        _w = checks.call(train_perceptron, _xb, _yb, _epochs)
    checks.assert_close(_w, _rosenblatt(_xb, _yb, _epochs), name=f"train_perceptron(30 separable points, nb_epochs_max={_epochs})")
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 6.** Write `perceptron_error_rate(w, x, y)`: the fraction of samples with
# `y[i] * (x[i] @ w) <= 0`, as a Python float. (A sample exactly on the line counts as an error,
# as in training.)

# %% deletable=false nbgrader={"grade": false, "grade_id": "perceptron_error_rate", "locked": false, "schema_version": 3, "solution": true, "task": false}
def perceptron_error_rate(w, x, y):
    """mean over i of 1{y[i] (x[i] . w) <= 0}, as a Python float."""
    ### BEGIN SOLUTION
    return ((y * (x @ w)) <= 0).float().mean().item()
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_perceptron_error_rate", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Checks the error rate, the <= on the line, and that the result is a Python float.
x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])
y = torch.tensor([1.0, 1.0, 1.0, -1.0])
w = torch.tensor([1.0, 0.0])  # scores 1, 0, -1, 1: samples 1 (on the line), 2 and 3 are errors
# the mean may be taken in float32 before .item() (the contract fixes no dtype for it): dtype=float32
checks.assert_python_float(checks.call(perceptron_error_rate, w, x, y), 0.75, name="perceptron_error_rate",
                           dtype=torch.float32)
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(3)
for _n in (1, 9, 100):
    _x = torch.randn(_n, 5, generator=_g, dtype=torch.float64)
    _y = torch.where(torch.rand(_n, generator=_g) < 0.5, -1.0, 1.0).to(torch.float64)
    _w = torch.randn(5, generator=_g, dtype=torch.float64)
    _expected = sum(1 for i in range(_n) if float(_y[i]) * float(_x[i] @ _w) <= 0) / _n
    checks.assert_python_float(checks.call(perceptron_error_rate, _w, _x, _y), _expected, name=f"perceptron_error_rate(N={_n})",
                               dtype=torch.float32)  # a mean computed in float32 is fine
### END HIDDEN TESTS

# %% [markdown]
# ### Predict, then check: updates in the third epoch
#
# Before watching the perceptron at work, run it in your head on four points of the plane, **without a
# bias** (the line goes through the origin), visited in this order:
#
# | sample | $x$ | $y$ |
# | --- | --- | --- |
# | 0 | $(0, 1)$ | $+1$ |
# | 1 | $(-2, 2)$ | $-1$ |
# | 2 | $(2, 0)$ | $+1$ |
# | 3 | $(2, 2)$ | $+1$ |
#
# Start from $w = (0, 0)$ and apply the rule exactly: update when $y_i\,(w \cdot x_i) \le 0$.
#
# **Exercise 7 (predict).** How many updates does the perceptron make in its **third** epoch? Set
# `predicted_updates` to a whole number, *before* running the experiment below. Work it out with pencil
# and paper: each dot product is between small integers. (The check compares your number with the
# true one only when the lab is graded; the cell after the experiment shows both.)

# %% deletable=false nbgrader={"grade": false, "grade_id": "predicted_updates", "locked": false, "schema_version": 3, "solution": true, "task": false}
# Replace the lines inside the `with` block by `predicted_updates = <your whole number>`.
with needs("predicted_updates"):
    ### BEGIN SOLUTION
    predicted_updates = 1
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_predicted_updates", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Checks that predicted_updates is a whole number; when the lab is graded, compares it with the number of
# updates Rosenblatt's rule makes in the third epoch of the four-point example (computed here by the test).
try:
    _guess = predicted_updates
except NameError:
    raise AssertionError("predicted_updates is not set yet: write your prediction in the cell above and run it "
                         "(diagnosis: not_implemented)") from None
if isinstance(_guess, bool) or not isinstance(_guess, (int, float)) or not float(_guess).is_integer():
    raise AssertionError(f"predicted_updates should be a whole number of updates, got {_guess!r} (diagnosis: prediction)")
### BEGIN HIDDEN TESTS
_points = [(0.0, 1.0), (-2.0, 2.0), (2.0, 0.0), (2.0, 2.0)]
_labels = [1.0, -1.0, 1.0, 1.0]
_w = [0.0, 0.0]
_per_epoch = []
for _epoch in range(20):
    _n = 0
    for (_u, _v), _label in zip(_points, _labels):
        if _label * (_u * _w[0] + _v * _w[1]) <= 0:
            _w = [_w[0] + _label * _u, _w[1] + _label * _v]
            _n += 1
    _per_epoch.append(_n)
    if _n == 0:
        break
_true = _per_epoch[2] if len(_per_epoch) > 2 else 0
if int(_guess) != _true:
    raise AssertionError(f"you predicted {int(_guess)} update(s) in the third epoch; Rosenblatt's rule makes {_true} "
                         f"(updates per epoch: {_per_epoch}) (diagnosis: prediction)")
### END HIDDEN TESTS

# %% [markdown]
# The experiment: your `train_perceptron`, replayed one visit at a time, on the four points.

# %%
x_pred = torch.tensor([[0.0, 1.0], [-2.0, 2.0], [2.0, 0.0], [2.0, 2.0]])
y_pred = torch.tensor([1.0, -1.0, 1.0, 1.0])
with needs("train_perceptron", "perceptron_error_rate"):
    rows_pred = perceptron_runs.epoch_rows(train_perceptron, perceptron_error_rate, x_pred, y_pred, nb_epochs_max=20)
    for r in rows_pred:
        print(f"epoch {r.epoch + 1}: {r.nb_updates} update(s), w = {[float(t) for t in r.w]}, "
              f"{round(r.train_error * len(y_pred))} point(s) on the wrong side or on the line")

# %%
with needs("predicted_updates", "train_perceptron"):
    third = rows_pred[2].nb_updates if len(rows_pred) > 2 else 0
    print(f"You predicted {predicted_updates} update(s) in the third epoch; the perceptron made {third}.")

# %% [markdown]
# The third epoch still updates although, at its start, every point is on its correct side or
# **on** the line: sample 0 has $w \cdot x_0 = 0$ exactly, and `<= 0` counts that as a mistake.
# A perceptron stops only when every point is *strictly* on its side.
#
# ### Watch it learn
#
# The widget below runs **your** `train_perceptron` one visit at a time on a 2-D data set (with a
# bias column) and draws the separating line $w \cdot (x_1, x_2, 1) = 0$ after each update. The circled
# point is the sample that caused the update; the arrow is the direction of $(w_1, w_2)$, which points
# towards the $+1$ side. Press play, or drag the slider.
#
# Things to notice: each update tilts the line towards classifying the circled point correctly, but
# may spoil others; the number of updates is finite here because the data are separable.

# %%
stepper = widgets.perceptron.perceptron_stepper(train_perceptron)
display(stepper.widget)

# %% [markdown]
# ### Digits: "0" versus "1"
#
# Fleuret's lecture trained the perceptron on MNIST's zeros against ones and printed one line per
# epoch. We use scikit-learn's 8x8 digits (they ship with the library, so nothing is downloaded):
# 64 pixel values in $[0, 1]$, plus the bias column. The table reports, for each epoch, the number of
# updates and the error rates on the training set and on a held-out test set.

# %%
x01, y01 = data.digits_binary("1 vs 0")  # "1" is the positive class, "0" the negative one
x_train, y_train, x_test, y_test = data.train_test_split(x01, y01, 0.25, generator=torch.Generator().manual_seed(0))
print(f"{len(x_train)} training and {len(x_test)} test images of 0s and 1s")
fig, ax = plt.subplots(figsize=(6, 1.8))
plots.digit_grid(ax, x_train[:16], nrow=16)
plt.show()

# %%
with needs("add_bias_column", "train_perceptron", "perceptron_error_rate"):
    xb_train, xb_test = add_bias_column(x_train), add_bias_column(x_test)
    rows01 = perceptron_runs.epoch_rows(train_perceptron, perceptron_error_rate, xb_train, y_train, xb_test, y_test,
                                        nb_epochs_max=20)
    print(perceptron_runs.format_epoch_table(rows01))
    w_end = rows01[-1].w

# %% [markdown]
# The last epoch makes no update: zeros and ones are linearly separable, and the perceptron has found
# a separating hyperplane. On the small 8x8 digits this takes a single epoch and a handful of updates;
# on MNIST's 28x28 images Fleuret's lecture needed 8 epochs with updates (118 in all) before a clean ninth. The test error is small but
# need not be zero: a line that separates the training set perfectly is one of many, and nothing in
# the algorithm prefers one that generalises well.
#
# ### A harder pair: "9" versus "4"
#
# Nines and fours share strokes, and the perceptron needs several epochs to separate them. Watch the
# two error columns: the training error goes down to 0 (it has to, once an epoch is clean), but the
# test error does not follow it; it moves up and down as each update tilts the hyperplane.

# %%
x94, y94 = data.digits_binary("9 vs 4")  # "9" is the positive class
x94_train, y94_train, x94_test, y94_test = data.train_test_split(x94, y94, 0.25, generator=torch.Generator().manual_seed(0))
with needs("add_bias_column", "train_perceptron", "perceptron_error_rate"):
    rows94 = perceptron_runs.epoch_rows(train_perceptron, perceptron_error_rate, add_bias_column(x94_train), y94_train,
                                        add_bias_column(x94_test), y94_test, nb_epochs_max=50)
    print(perceptron_runs.format_epoch_table(rows94))
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    perceptron_runs.draw_epoch_errors(ax, rows94, "'9' vs '4': the training error reaches 0, the test error moves")
    plt.show()

# %% [markdown]
# **MNIST (optional).** The next cell runs the same "0" versus "1" table on MNIST's 28x28 images when
# the environment variable `BACKPROPLAB_MNIST` names a folder holding the MNIST IDX files (nothing is
# downloaded). It reads **only the t10k file** (MNIST's 10,000 test images), keeps its 0s and 1s, and
# splits them at random into halves of its own for training and testing. Fleuret's lecture trained on the
# 60,000 training images, so expect similar but not identical numbers.

# %%
import os

if os.environ.get("BACKPROPLAB_MNIST"):
    with needs("add_bias_column", "train_perceptron", "perceptron_error_rate"):
        xm, labels_m = data.load_mnist(split="test")  # the t10k file, from the folder BACKPROPLAB_MNIST names
        keep = labels_m <= 1
        xm, ym = add_bias_column(xm[keep]), labels_m[keep].float() * 2 - 1
        xm_train, ym_train, xm_test, ym_test = data.train_test_split(xm, ym, 0.5, generator=torch.Generator().manual_seed(0))
        rows_m = perceptron_runs.epoch_rows(train_perceptron, perceptron_error_rate, xm_train, ym_train, xm_test, ym_test,
                                            nb_epochs_max=10)
        print("MNIST t10k, 0s and 1s split in two halves:")
        print(perceptron_runs.format_epoch_table(rows_m))
else:
    print("BACKPROPLAB_MNIST is not set: skipping the MNIST version (nothing is downloaded).")

# %% [markdown]
# The weights learned for "1" versus "0" live in pixel space, so we can look at them as an image: positive weights
# (pixels that vote for "1") and negative ones (pixels that vote for "0").

# %%
with needs("train_perceptron"):
    fig, ax = plt.subplots(figsize=(2.5, 2.5))
    image = ax.imshow(w_end[:64].reshape(8, 8), cmap="RdBu_r")
    ax.set_title("weights, '1' vs '0'")
    ax.set_axis_off()
    fig.colorbar(image, ax=ax, shrink=0.8)
    plt.show()

# %% [markdown]
# ## 3. The limits of a line: xor
#
# A linear classifier can only separate **linearly separable** classes. The xor data below (four
# noisy clusters, label 1 where the two coordinates have different signs) is the classic example:
# whatever $w$, a line leaves at least one cluster on the wrong side. The perceptron never stops
# updating, and the weights it returns after the last epoch are simply wherever the last update left
# them, which can be worse than chance.

# %%
gen = torch.Generator().manual_seed(1)
x_xor, labels_xor = data.xor(200, noise=0.15, generator=gen)
y_xor = labels_xor.float() * 2 - 1
with needs("add_bias_column", "train_perceptron", "perceptron_error_rate"):
    w_lin = train_perceptron(add_bias_column(x_xor), y_xor, 50)
    print(f"perceptron on (x_u, x_v, 1): training error {100 * perceptron_error_rate(w_lin, add_bias_column(x_xor), y_xor):.1f}% after 50 epochs")


# %% [markdown]
# The fix from Fleuret's lecture: **pre-process** the data so that the classes become separable. With
#
# $$\Phi(x_u, x_v) = (x_u,\ x_v,\ x_u x_v)$$
#
# the xor label is the sign of $-x_u x_v$: a plane in the new three-dimensional space separates the
# classes, which means a curve (here a hyperbola) in the original plane.
#
# **Exercise 8.** Write `xor_features(x)`: `(N, 2)` to `(N, 3)` with columns `(x_u, x_v, x_u * x_v)`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "xor_features", "locked": false, "schema_version": 3, "solution": true, "task": false}
def xor_features(x):
    """Phi(x_u, x_v) = (x_u, x_v, x_u x_v)."""
    ### BEGIN SOLUTION
    return torch.cat([x, (x[:, 0] * x[:, 1]).unsqueeze(1)], dim=1)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_xor_features", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# Checks the three columns on a small example.
x = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])
checks.assert_close(checks.call(xor_features, x), torch.tensor([[1.0, 2.0, 2.0], [-3.0, 0.5, -1.5]]), name="xor_features")
### BEGIN HIDDEN TESTS
_x = torch.randn(9, 2, dtype=torch.float64)
_x_before = _x.clone()
checks.assert_close(checks.call(xor_features, _x), torch.stack([_x[:, 0], _x[:, 1], _x[:, 0] * _x[:, 1]], 1),
                    name="xor_features(float64)")
if not torch.equal(_x, _x_before):
    raise AssertionError("xor_features modified its input (diagnosis: modified_input)")
checks.assert_close(checks.call(xor_features, torch.tensor([[2.0, 3.0]])), torch.tensor([[2.0, 3.0, 6.0]]),
                    name="xor_features(one row)")
### END HIDDEN TESTS

# %%
with needs("xor_features", "add_bias_column", "train_perceptron", "perceptron_error_rate"):
    phi = add_bias_column(xor_features(x_xor))
    w_phi = train_perceptron(phi, y_xor, 50)
    print(f"perceptron on (x_u, x_v, x_u x_v, 1): training error {100 * perceptron_error_rate(w_phi, phi, y_xor):.1f}%")
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, w_, features, title in [(axes[0], w_lin, lambda p: add_bias_column(p), "linear features"),
                                    (axes[1], w_phi, lambda p: add_bias_column(xor_features(p)), "with x_u x_v")]:
        plots.decision_boundary(ax, lambda p, w_=w_, f=features: (f(p) @ w_ > 0).long(), (-2, 2), (-2, 2))
        plots.scatter_2d(ax, x_xor, labels_xor)
        ax.set_title(title)
    plt.show()


# %% [markdown]
# ## 4. Feature design and capacity: "8" versus the rest
#
# The same trick scales to a real problem. Separating the 8s from all other digits is much harder
# for a linear classifier than 0 versus 1. Following Fleuret's lecture, we **supplement the pixels with
# products of pairs of pixels chosen at random**. Each product is a new feature; the perceptron stays
# linear in the features but becomes non-linear in the pixels.
#
# **Exercise 9.** Write `product_features(x, nb_pairs, generator=None)`: `(N, D)` to
# `(N, D + nb_pairs)`: the original columns, then `nb_pairs` products `x[:, i] * x[:, j]` for pairs
# `i != j` drawn at random with `generator` (pass it to every random call, for example
# `torch.randint(..., generator=generator)`, so that the same seed gives the same features).

# %% deletable=false nbgrader={"grade": false, "grade_id": "product_features", "locked": false, "schema_version": 3, "solution": true, "task": false}
def product_features(x, nb_pairs, generator=None):
    """[x, x[:, i_k] * x[:, j_k] for k < nb_pairs], random pairs i_k != j_k."""
    ### BEGIN SOLUTION
    d = x.shape[1]
    first = torch.randint(0, d, (nb_pairs,), generator=generator)
    shift = torch.randint(1, d, (nb_pairs,), generator=generator)
    second = (first + shift) % d  # never equal to first
    return torch.cat([x, x[:, first] * x[:, second]], dim=1)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_product_features", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# Checks shape, that the first columns are x, that each new column is a product of two different
# columns, and that the same generator seed gives the same features.
x = torch.randn(20, 6, generator=torch.Generator().manual_seed(0))
f = checks.call(product_features, x, 10, torch.Generator().manual_seed(1))
checks.assert_close(f[:, :6] if isinstance(f, torch.Tensor) and f.dim() == 2 else f, x, name="product_features(...)[:, :D]")
if f.shape != (20, 16):
    raise AssertionError(f"product_features: shape {tuple(f.shape)}, expected (20, 16) (diagnosis: wrong_shape)")
for k in range(6, 16):
    if not any(checks.compare(f[:, k], x[:, i] * x[:, j]) is None for i in range(6) for j in range(6) if i != j):
        raise AssertionError(f"product_features: column {k} is not x[:, i] * x[:, j] for any i != j (diagnosis: values)")
again = checks.call(product_features, x, 10, torch.Generator().manual_seed(1))
checks.assert_close(again, f, name="product_features(same generator seed twice)")
### BEGIN HIDDEN TESTS
_x = torch.randn(7, 4, dtype=torch.float64)
_f0 = checks.call(product_features, _x, 0, torch.Generator().manual_seed(2))
checks.assert_close(_f0, _x, name="product_features(nb_pairs=0)")
torch.manual_seed(100)
_a = checks.call(product_features, _x, 50, torch.Generator().manual_seed(3))
torch.manual_seed(200)
_b = checks.call(product_features, _x, 50, torch.Generator().manual_seed(3))
checks.assert_close(_b, _a, name="product_features (draws must come from `generator`, not the global RNG)")
if _a.dtype != torch.float64 or _a.shape != (7, 54):
    raise AssertionError(f"product_features: got {tuple(_a.shape)} {_a.dtype}, expected (7, 54) float64 (diagnosis: wrong_shape)")
_pairs = set()
for _k in range(4, 54):
    _match = [(i, j) for i in range(4) for j in range(4) if i != j and checks.compare(_a[:, _k], _x[:, i] * _x[:, j]) is None]
    if not _match:
        raise AssertionError(f"product_features: column {_k} is not a product of two different columns (diagnosis: values)")
    _pairs.add(min(_match))
if len(_pairs) < 3:
    raise AssertionError("product_features: 50 random pairs of 4 columns gave fewer than 3 different pairs; "
                         "are the pairs really drawn at random? (diagnosis: values)")
_c = checks.call(product_features, torch.randn(3, 2, dtype=torch.float64), 5, torch.Generator().manual_seed(4))
if _c.shape != (3, 7):
    raise AssertionError(f"product_features with D=2: shape {tuple(_c.shape)}, expected (3, 7) (diagnosis: wrong_shape)")
### END HIDDEN TESTS

# %% [markdown]
# Now the experiment: "8" versus the other nine digits, with a growing number of product features.
# The perceptron is capped at 20 epochs, since these classes are not separable with few features.

# %%
x8, y8 = data.digits_binary("8 vs rest")
x8_train, y8_train, x8_test, y8_test = data.train_test_split(x8, y8, 0.25, generator=torch.Generator().manual_seed(0))
print(f"{int((y8_train > 0).sum())} eights among {len(y8_train)} training images")
pair_counts = [0, 32, 128, 512, 2048]
results = []
with needs("product_features", "add_bias_column", "train_perceptron", "perceptron_error_rate"):
    for nb_pairs in pair_counts:
        gen = torch.Generator().manual_seed(0)
        f_train = add_bias_column(product_features(x8_train, nb_pairs, gen))
        gen = torch.Generator().manual_seed(0)  # the same pairs for the test set
        f_test = add_bias_column(product_features(x8_test, nb_pairs, gen))
        w8 = train_perceptron(f_train, y8_train, 20)
        results.append((nb_pairs, perceptron_error_rate(w8, f_train, y8_train), perceptron_error_rate(w8, f_test, y8_test)))
        print(f"{nb_pairs:5d} pairs: train error {100 * results[-1][1]:5.2f}%  test error {100 * results[-1][2]:5.2f}%")

# %%
with needs("product_features"):
    if not results:  # the experiment above was skipped
        raise NotImplementedError()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot([r[0] + 1 for r in results], [100 * r[1] for r in results], "o-", label="train")
    ax.plot([r[0] + 1 for r in results], [100 * r[2] for r in results], "s-", label="test")
    # the baseline any classifier must beat: answer "not 8" for every image, wrong exactly on the 8s
    perceptron_runs.draw_constant_baseline(ax, float((y8_train > 0).float().mean()), "always 'not 8' (train)", "#1f77b4")
    perceptron_runs.draw_constant_baseline(ax, float((y8_test > 0).float().mean()), "always 'not 8' (test)", "#ff7f0e")
    ax.set_xscale("log")
    ax.set_xlabel("number of product features + 1")
    ax.set_ylabel("error (%)")
    ax.set_title("'8' vs the rest: capacity through features")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    plt.show()
print(f"Always answering 'not 8' errs on the 8s only: {100 * float((y8_train > 0).float().mean()):.1f}% of the "
      f"training images, {100 * float((y8_test > 0).float().mean()):.1f}% of the test images.")

# %% [markdown]
# Read the plot against the dotted lines first: a classifier that never says "8" is already right
# about nine times in ten, so an error rate is only worth something below that line.
#
# **Exercise 10 (written answer).** In three to six sentences: what do the two curves say about the
# **capacity** of a perceptron on product features? Say what happens to the training error, what
# happens to the test error, and why reaching zero training error does not settle which classifier is
# best. Then say, after Fleuret's lecture, in which other direction "feature design" can move capacity
# and what good features should be invariant to.

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_capacity", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Every product feature adds a dimension in which the classes may be separated, so the set of
# classifiers the perceptron can express grows with `nb_pairs`: its **capacity** rises. The training
# error falls accordingly, towards zero once the training set becomes linearly separable in the feature
# space (the model is then non-linear in the pixels: products of pixels respond to strokes that meet or
# cross, as in the loops of an 8). The test error falls too, well below the 9-10% of always answering
# "not 8", but it stays above the training error: the gap is what was fitted to these particular
# images and does not transfer. Once the training error is zero, the training set no longer tells
# separating hyperplanes apart, and the perceptron returns whichever one its last updates reached;
# more capacity then mostly adds the freedom to memorise (and the curves are noisy because the pairs
# are random). Feature design can also **reduce** capacity without hurting (or while improving) the
# bias: good features are invariant to the perturbations of the signal that leave the label unchanged,
# as the histograms of oriented gradients of Dalal and Triggs (2005) are to small shifts and changes of
# contrast.
# ### END SOLUTION

# %% [markdown]
# Training hand-designed features and a linear model on top is what Fleuret's lecture calls **shallow
# learning**: the signal goes through a single processing trained from data. Deep learning's answer,
# from the next labs on, is to *learn* the features too: a multi-layer perceptron whose hidden layers
# are trained by gradient descent, with gradients computed by back-propagation. The last section looks
# at that step.
#
# ## 5. From linear to deep
#
# Both lectures build the multi-layer perceptron the same way: layers $x^{(l)} = \sigma(w^{(l)}
# x^{(l-1)} + b^{(l)})$, each the input of the next ("we can stack multiple layers together", in *Neural Network
# View of a Linear Classifier*). The demonstrations below are not graded; they show why $\sigma$ must not be affine, which
# smooth $\sigma$ the two lectures use, and what one hidden layer can do.
#
# ### Stacked affine maps collapse to one
#
# Fleuret's lecture: "if $\sigma$ is affine, this is an affine mapping". Indeed
# $W_2 (W_1 x + b_1) + b_2 = (W_2 W_1)\, x + (W_2 b_1 + b_2)$: any number of affine layers is one affine
# map, whose matrix is the **product** of the layers' matrices. Three layers $3 \to 5 \to 4 \to 2$,
# checked numerically:

# %%
gen = torch.Generator().manual_seed(0)
sizes = [3, 5, 4, 2]
weights = [torch.randn(m, n, generator=gen, dtype=torch.float64) for n, m in zip(sizes[:-1], sizes[1:])]
biases = [torch.randn(m, generator=gen, dtype=torch.float64) for m in sizes[1:]]
x_many = torch.randn(1000, 3, generator=gen, dtype=torch.float64)
stacked = linear_to_deep.apply_layers(weights, biases, x_many)  # (1000, 2), layer after layer
W, b = linear_to_deep.compose_affine(weights, biases)  # W = W3 W2 W1, (2, 3)
print(f"W = W3 W2 W1 has shape {tuple(W.shape)}; three layers against one map: "
      f"max difference {float((stacked - (x_many @ W.T + b)).abs().max()):.1e}")
with_tanh = linear_to_deep.apply_layers(weights, biases, x_many, torch.tanh)
design = torch.cat([x_many, torch.ones(1000, 1, dtype=torch.float64)], 1)
best_affine = design @ torch.linalg.lstsq(design, with_tanh).solution
print(f"with tanh after each layer, the best affine map still misses by {float((with_tanh - best_affine).pow(2).mean().sqrt()):.3f} "
      f"(root mean square; the outputs have spread {float(with_tanh.std()):.3f})")

# %% [markdown]
# The same on one input and one output, drawn: eight layers of width 8, with and without tanh. The
# affine stack is a straight line however deep it is; with tanh between the layers it bends.

# %%
gen = torch.Generator().manual_seed(3)
widths_1d = [1] + [8] * 7 + [1]
weights_1d = [torch.randn(m, n, generator=gen, dtype=torch.float64) / n ** 0.5 * 1.5 for n, m in zip(widths_1d[:-1], widths_1d[1:])]
biases_1d = [0.5 * torch.randn(m, generator=gen, dtype=torch.float64) for m in widths_1d[1:]]
t = torch.linspace(-3, 3, 300, dtype=torch.float64)[:, None]
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(t[:, 0], linear_to_deep.apply_layers(weights_1d, biases_1d, t)[:, 0])
axes[0].set_title("8 affine layers: one affine map", fontsize=10)
axes[1].plot(t[:, 0], linear_to_deep.apply_layers(weights_1d, biases_1d, t, torch.tanh)[:, 0], color="#d62728")
axes[1].set_title("the same layers with tanh between them", fontsize=10)
for ax in axes:
    ax.set_xlabel("input")
    ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ### tanh is a rescaled sigmoid
#
# The lectures' two smooth activations are the sigmoid $\sigma(x) = 1 / (1 + e^{-x})$ (in *Neural Network
# View of a Linear Classifier*) and the hyperbolic tangent, which Fleuret's lecture writes $x \mapsto \frac{2}{1 + e^{-2x}} - 1$.
# That formula says
#
# $$\tanh(x) = 2\,\sigma(2x) - 1,$$
#
# since $\frac{2}{1 + e^{-2x}} - 1 = \frac{1 - e^{-2x}}{1 + e^{-2x}} = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}$:
# the same S-shaped curve, stretched to $(-1, 1)$ and twice as steep at 0. Both are smoothed threshold
# units: $\sigma(k x)$ tends to $\mathbf{1}\{x \ge 0\}$ (except at 0) as $k$ grows.

# %%
t = torch.linspace(-6, 6, 1001, dtype=torch.float64)
print(f"max |tanh(x) - (2 sigmoid(2x) - 1)| on [-6, 6]: {float((torch.tanh(t) - (2 * torch.sigmoid(2 * t) - 1)).abs().max()):.1e}")
fig, ax = plt.subplots(figsize=(5.5, 3.5))
linear_to_deep.draw_tanh_sigmoid(ax)
ax.set_title("tanh(x) = 2 sigmoid(2x) - 1, and the threshold they smooth", fontsize=10)
plt.show()

# %% [markdown]
# **Exercise 11 (written answer).** The perceptron trains a single threshold unit, but a network of
# threshold units cannot be trained by gradient descent. In three to six sentences, explain why: what
# is the derivative of $\mathbf{1}\{w \cdot x + b \ge 0\}$ with respect to $w$, and what does that make
# of the gradient of a loss through such units? Why does Rosenblatt's rule not extend to hidden units?
# What does replacing the threshold by a sigmoid or tanh change?

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_threshold_gradient", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# The output of a threshold unit is piecewise constant in its weights: moving $w$ a little changes
# nothing unless $w \cdot x + b$ crosses 0, where the output jumps. Its derivative with respect to $w$
# is therefore 0 almost everywhere and undefined on the boundary, so by the chain rule the gradient of
# any loss computed through threshold units is 0 (or undefined): it carries no information about which
# way to move the weights, and gradient descent never moves. Rosenblatt's rule avoids derivatives: for
# a single output unit the label says directly whether the unit was wrong and in which direction to
# push, $w \leftarrow w + y_n x_n$. A hidden unit has no label of its own, and with thresholds there is
# no signal telling how its output should change to reduce the final error (the credit assignment
# problem). A sigmoid or tanh is a smooth threshold with a non-zero derivative ($\sigma' = \sigma(1 -
# \sigma)$, $\tanh' = 1 - \tanh^2$): small weight changes change the output a little, the loss becomes
# differentiable in every weight, and the chain rule (back-propagation) gives each hidden unit its share
# of the gradient. (Far from 0 these derivatives become small, which slows learning: saturation.)
# ### END SOLUTION

# %% [markdown]
# ### One hidden layer: universal approximation
#
# Fleuret's lecture states the **universal approximation theorem**: under mild assumptions on
# $\sigma$, any continuous $f : [0, 1]^D \to \mathbb{R}$ can be approximated as closely as we want by a
# perceptron with one hidden layer, "if it has enough units"; and adds that this "says nothing about
# the number of units". Let us count them on one example: the function below on $[-2, 2]$, fitted by
# $x \mapsto \sum_{k=1}^{K} v_k \tanh(a_k x + c_k) + d$ with $K = 1, 2, 4, 8, 16, 32$ hidden units. Every
# parameter is trained with `torch` (Adam on the mean squared error, 800 full-batch steps on 120 points;
# the six networks are trained together in one loop, which takes a second or two).

# %%
x_fit, y_fit, sweep = linear_to_deep.width_sweep(widths=(1, 2, 4, 8, 16, 32), nb_points=120, nb_steps=800, seed=0)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
linear_to_deep.draw_fits(axes[0], x_fit, y_fit, [r for r in sweep if r.width in (1, 2, 4, 8)], which="learned")
linear_to_deep.draw_error_against_width(axes[1], sweep)
axes[1].set_title("error against width (log scales)", fontsize=10)
plt.show()

# %% [markdown]
# The error falls by orders of magnitude as units are added: with one unit the network can only
# draw one S-shaped step; each extra unit adds a step of its own slope, place and height, and a sum of
# enough steps follows any continuous curve. What the theorem does not say, the plot does: how many
# units this particular function needs, and that the answer depends on how wiggly it is.
#
# ### Shallow features against learned ones
#
# The dashed curve in the right-hand plot keeps the hidden units **as they were drawn at random**
# (slopes $a_k$ and positions $-c_k / a_k$ of their steps) and fits only the output layer, exactly, by
# least squares: that is shallow learning with random features, at the same width. Both fits start
# from the same random units; the learned network also moves them.

# %%
print(f"{'width':>5} {'random features':>16} {'learned':>10} {'ratio':>7}")
for r in sweep:
    print(f"{r.width:5d} {r.random_mse:16.2e} {r.learned_mse:10.2e} {r.random_mse / r.learned_mse:7.1f}")
fig, ax = plt.subplots(figsize=(5.5, 3.4))
linear_to_deep.draw_fits(ax, x_fit, y_fit, [r for r in sweep if r.width in (2, 4, 8)], which="random")
plt.show()

# %% [markdown]
# At every width, learning where the units sit beats keeping them where chance put them (by a factor
# between about 1 and 30 here: the ratio column). The difference you can see is at 2 to 8 units: the
# random steps land in the wrong places and the fit stays poor, while learned units move to where the
# function bends and already follow it. With many units, random steps cover a one-dimensional
# interval densely and the exact output layer does most of the work, though moving the units still
# helps. In many dimensions random units cover the space far more thinly, which is one reason deep
# learning learns its features rather than drawing or designing them.

# %% [markdown]
# ## Sources and further reading
#
# **The lectures this lab follows** (transcripts in the course's seed folder):
#
# - François Fleuret, *Deep Learning #3 – MLP, backprop, autograd*, IfI Summer School 2018 on Machine
#   Learning, 26 June 2018 (<http://fleuret.org/ifi/>). Threshold logic units and the gates, the
#   perceptron algorithm and its code, the MNIST "0" versus "1" log, xor and $\Phi$, "8" versus the rest
#   with random products of pixels, feature design and HOG, the MLP, tanh and ReLU, universal
#   approximation.
# - *Neural Network View of a Linear Classifier* (lecture slides; the transcript names no lecturer or
#   course; its figures are adapted from slides by Fei-Fei Li, Justin Johnson and Serena Yeung,
#   CS 231n). Neurons as linear classifiers with a non-linearity, the sigmoid, fully connected layers
#   stacked into networks.
#
# **Original papers and books:**
#
# - W. S. McCulloch and W. Pitts, "A logical calculus of the ideas immanent in nervous activity",
#   *Bulletin of Mathematical Biophysics* 5(4):115–133, 1943. The threshold logic unit.
# - F. Rosenblatt, *The perceptron — a perceiving and recognizing automaton*, Technical Report
#   85-460-1, Cornell Aeronautical Laboratory, 1957; and "The perceptron: a probabilistic model for
#   information storage and organization in the brain", *Psychological Review* 65(6):386–408, 1958.
# - A. B. J. Novikoff, "On convergence proofs on perceptrons", *Symposium on the Mathematical Theory
#   of Automata*, Polytechnic Institute of Brooklyn, 1962. The $R^2 / \gamma^2$ bound.
# - M. Minsky and S. Papert, *Perceptrons: An Introduction to Computational Geometry*, MIT Press, 1969.
#   What a single layer cannot compute (xor and parity among them).
# - G. Cybenko, "Approximation by superpositions of a sigmoidal function", *Mathematics of Control,
#   Signals and Systems* 2(4):303–314, 1989; K. Hornik, M. Stinchcombe and H. White, "Multilayer
#   feedforward networks are universal approximators", *Neural Networks* 2(5):359–366, 1989.
#   Universal approximation.
# - A. Rahimi and B. Recht, "Random features for large-scale kernel machines", *NeurIPS* 2007.
#   Shallow learning with random features.
# - N. Dalal and B. Triggs, "Histograms of oriented gradients for human detection", *CVPR* 2005,
#   pages 886–893. The HOG features of Fleuret's lecture.
# - Y. LeCun, C. Cortes and C. J. C. Burges, the MNIST database of handwritten digits; the 8x8 digits
#   used here are the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin and
#   C. Kaynak, 1998) as shipped with scikit-learn.
