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
#    then for "8" versus every other digit, where adding features raises the model's capacity.
#
# Every exercise has a cell that says `raise NotImplementedError()`: replace that line with your code,
# run the cell, then run the check below it. A check that fails tells you what went wrong in words.
#
# **Conventions.** Data sets are tensors `x` of shape `(N, D)` (one row per sample); labels for the
# perceptron are `y` in `{-1., +1.}` of shape `(N,)`. Every function keeps the dtype of its inputs and
# never modifies them.
#
# Only the exercise cells are graded: put any helper function you write inside the exercise's cell.

# %%
import matplotlib.pyplot as plt
import torch
from backproplab import checks, data, env, needs, plots, widgets
from backproplab.widgets.perceptron import perceptron_trace
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
# For inputs $a, b \in \{0, 1\}$, one unit is enough for each of these gates (the lecture's choice of
# weights):
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
# from examples $(x_n, y_n) \in \mathbb{R}^D \times \{-1, +1\}$. Rosenblatt's algorithm:
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
# The bias is not special here: pass `add_bias_column(x)` if you want one.

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
checks.assert_python_float(checks.call(perceptron_error_rate, w, x, y), 0.75, name="perceptron_error_rate", rtol=1e-6)
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(3)
for _n in (1, 9, 100):
    _x = torch.randn(_n, 5, generator=_g, dtype=torch.float64)
    _y = torch.where(torch.rand(_n, generator=_g) < 0.5, -1.0, 1.0).to(torch.float64)
    _w = torch.randn(5, generator=_g, dtype=torch.float64)
    _expected = sum(1 for i in range(_n) if float(_y[i]) * float(_x[i] @ _w) <= 0) / _n
    checks.assert_python_float(checks.call(perceptron_error_rate, _w, _x, _y), _expected, name=f"perceptron_error_rate(N={_n})",
                               rtol=1e-6)  # a mean computed in float32 is fine
### END HIDDEN TESTS

# %% [markdown]
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
# The lecture trained the perceptron on MNIST's zeros against ones. We use scikit-learn's 8x8
# digits (they ship with the library, so nothing is downloaded): 64 pixel values in $[0, 1]$, plus
# the bias column. The table reports, for each epoch, the number of updates and the error rates on
# the training set and on a held-out test set.

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
    visits = perceptron_trace(train_perceptron, xb_train, y_train, nb_epochs_max=20)
    print(f"{'epoch':>5} {'updates':>8} {'train error':>12} {'test error':>11}")
    for epoch in range(visits[-1].epoch + 1):
        in_epoch = [v for v in visits if v.epoch == epoch]
        w_end = in_epoch[-1].w_after
        print(f"{epoch:5d} {sum(v.updated for v in in_epoch):8d} "
              f"{100 * perceptron_error_rate(w_end, xb_train, y_train):11.2f}% "
              f"{100 * perceptron_error_rate(w_end, xb_test, y_test):10.2f}%")

# %% [markdown]
# The last epoch makes no update: zeros and ones are linearly separable, and the perceptron has found
# a separating hyperplane. On the small 8x8 digits this takes a single epoch and a handful of updates;
# on MNIST's 28x28 images the lecture needed 8 epochs and about a hundred updates (run the next cell
# with `BACKPROPLAB_MNIST` pointing at a folder of MNIST IDX files to see it). The test error is small
# but need not be zero: a line that separates the training set perfectly is one of many, and nothing
# in the algorithm prefers one that generalises well.

# %%
import os

if os.environ.get("BACKPROPLAB_MNIST"):
    with needs("add_bias_column", "train_perceptron", "perceptron_error_rate"):
        xm, labels_m = data.load_mnist(split="test")  # the folder comes from BACKPROPLAB_MNIST
        keep = labels_m <= 1
        xm, ym = add_bias_column(xm[keep]), labels_m[keep].float() * 2 - 1
        xm_train, ym_train, xm_test, ym_test = data.train_test_split(xm, ym, 0.5, generator=torch.Generator().manual_seed(0))
        visits_m = perceptron_trace(train_perceptron, xm_train, ym_train, nb_epochs_max=10)
        for epoch in range(visits_m[-1].epoch + 1):
            in_epoch = [v for v in visits_m if v.epoch == epoch]
            w_m = in_epoch[-1].w_after
            print(f"MNIST epoch {epoch}: {sum(v.updated for v in in_epoch)} updates, "
                  f"train error {100 * perceptron_error_rate(w_m, xm_train, ym_train):.2f}%, "
                  f"test error {100 * perceptron_error_rate(w_m, xm_test, ym_test):.2f}%")
else:
    print("BACKPROPLAB_MNIST is not set: skipping the MNIST version (nothing is downloaded).")

# %% [markdown]
# The learned weights live in pixel space, so we can look at them as an image: positive weights
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
# The fix from the lecture: **pre-process** the data so that the classes become separable. With
#
# $$\Phi(x_u, x_v) = (x_u,\ x_v,\ x_u x_v)$$
#
# the xor label is the sign of $-x_u x_v$: a plane in the new three-dimensional space separates the
# classes, which means a curve (here a hyperbola) in the original plane.
#
# **Exercise 7.** Write `xor_features(x)`: `(N, 2)` to `(N, 3)` with columns `(x_u, x_v, x_u * x_v)`.

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
# for a linear classifier than 0 versus 1. Following the lecture, we **supplement the pixels with
# products of pairs of pixels chosen at random**. Each product is a new feature; the perceptron stays
# linear in the features but becomes non-linear in the pixels.
#
# **Exercise 8.** Write `product_features(x, nb_pairs, generator=None)`: `(N, D)` to
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
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r[0] + 1 for r in results], [100 * r[1] for r in results], "o-", label="train")
    ax.plot([r[0] + 1 for r in results], [100 * r[2] for r in results], "s-", label="test")
    ax.set_xscale("log")
    ax.set_xlabel("number of product features + 1")
    ax.set_ylabel("error (%)")
    ax.set_title("'8' vs the rest: capacity through features")
    ax.legend()
    ax.grid(alpha=0.3)
    plt.show()

# %% [markdown]
# **What this says.** More features give the linear classifier more **capacity**: the training error
# falls towards zero as the training set becomes separable in the larger feature space, and here the
# test error falls too, because products of pixels capture shapes (loops, crossings) that a line in
# pixel space cannot. The curves are not smooth: with few pairs, a random choice can add nothing
# useful, and the perceptron's answer depends on where its last updates left it. Capacity is not free
# either: the gap between training and test error is the part of what was learned that does not
# transfer, and once the training error reaches zero the training set can no longer tell us which of
# the many separating hyperplanes generalises. Feature design is a way to choose where capacity goes: good features add the invariances
# we know the problem has (the lecture's example is histograms of oriented gradients) without adding
# the freedom to memorise.
#
# Deep learning's answer, from the next labs on, is to *learn* the features too: a multi-layer
# perceptron whose hidden layers are trained by gradient descent, with gradients computed by
# back-propagation.
