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
# # Lab 3 — Backpropagation by hand through a tanh network
#
# In this lab you write, without `torch.autograd`, every gradient of a small neural network, and you
# check each one against autograd. You will build:
#
# 1. `fib_memo` and `fib_tab`: the Fibonacci numbers top-down with a memo and bottom-up with a table,
#    the warm-up that shows why backpropagation is *dynamic programming* and not just the chain rule;
# 2. the one-hidden-layer tanh network of Lecture 9: `init_params`, a numerically stable `softmax`,
#    `cross_entropy`, `forward`, and the hand-written `backward` with its two deltas;
# 3. training: `sgd_step`, `accuracy`, `train_mlp`, used on a 2-D toy problem and on the ten digits;
# 4. the general scheme for `k` layers, `deep_forward` and `deep_backward`, and a measurement of what
#    it saves against naive differentiation: $O(k m^2)$ instead of $O(k^2 m^2)$;
# 5. gradient flow through deep networks and the choice of initial weights: `layer_grad_norms` and
#    `xavier_init`, with a prediction to make before the experiment;
# 6. a bug hunt: `check_backward`, a test that tells a right `backward` from wrong ones.
#
# It follows two lectures (full references at the end): **Lecture 9** ("Lecture 9: Backpropagation",
# Rémy Sun, *Optimization for data sciences*, Université Côte d'Azur) for the tanh network, its deltas,
# dynamic programming and the lab code; and the **EPFL recitation** ("Backpropagation, Automatic
# Differentiation & PyTorch", *Mathematics of Data*, Prof. Volkan Cevher, EPFL) for the forward and
# backward schemes of a $k$-layer network and their cost.
#
# ### Notation: three conventions meet here
#
# Lecture 9's lab code names the quantities of the one-hidden-layer network; the EPFL recitation writes
# a $k$-layer network with pre-activations and activations per layer (it calls the weights $X^{(l)}$
# and the biases $\mu^{(l)}$; this lab writes $W_l$ and $b_l$); and backpropagation itself is usually
# written with *deltas* (Lecture 9) or *adjoints* (reverse-mode differentiation, as in lab 4): the
# derivative of the loss with respect to an intermediate value. One row per quantity:
#
# | quantity | Lecture 9 and the lab code (one hidden layer) | $k$-layer scheme (EPFL recitation) | delta / adjoint |
# | --- | --- | --- | --- |
# | input | $x$, `X` $(B, n_x)$ | $A_0$ ($a^{(0)}$) | |
# | weights, biases | $W^h$, $b^h$, $W^y$, $b^y$: `Wh`, `bh`, `Wy`, `by` | $W_l$, $b_l$ ($X^{(l)}$, $\mu^{(l)}$) | |
# | pre-activation | $\tilde h$ `htilde`, $\tilde y$ `ytilde` | $U_l$ ($u^{(l)}$) | |
# | activation | $h$ `h` (tanh), $\hat y$ `yhat` (softmax) | $A_l$ ($a^{(l)}$), tanh on every layer | |
# | loss gradient at a pre-activation | $\delta^h$, $\delta^y$ (`h_tilde_grad`, `Y_tilde_grad`) | $\partial L/\partial U_l$ | $\delta_l$, the adjoint $\bar u_l$ |
# | loss gradient at an activation | $\partial \ell / \partial h$ | $\partial L/\partial A_l$ (`dL_dAk` for $l = k$) | the adjoint $\bar a_l$ |
# | parameter gradient | `grads['Wh']` ... | `dweights[l]`, `dbiases[l]` | $\bar W_l$ |
#
# So $\tilde h$ is $U_1$, $h$ is $A_1$, $\delta^h$ is $\partial L/\partial U_1$ (a row per example) and
# $\delta^y$ is $\partial L/\partial U_2$ when the softmax and the cross-entropy are taken together. The
# lab's tensors have one example per row, so the products look transposed compared with the recitation's
# column vectors: $U_l = A_{l-1} W_l^\top + b_l$ for $u^{(l)} = X^{(l)} a^{(l-1)} + \mu^{(l)}$.
#
# Parameters are kept in a dict with `Wh` $(n_h, n_x)$, `bh` $(n_h, 1)$, `Wy` $(n_y, n_h)$, `by`
# $(n_y, 1)$, as in Lecture 9's lab code; a batch `X` has one example per row, shape $(B, n_x)$, and the
# targets `Y` are one-hot rows $(B, n_y)$.
#
# Each exercise is graded on its own: a grade cell feeds your function inputs it builds itself, so a
# mistake in one exercise does not cost the points of the next one.
#
# Only the exercise cells are graded: put any helper function you write inside the exercise's cell.

# %%
import math

import torch
from backproplab import backprop_tools as bt
from backproplab import bug_hunt_lab3 as bh3
from backproplab import checks, data, env, needs, plots
from backproplab import grad_flow as gf
from tqdm.auto import tqdm

torch.set_num_threads(1)  # every tensor here is small: one thread is faster and never waits for a busy core

# %%
env.check_environment()


# %% [markdown]
# ## 1. The chain rule is not enough
#
# The chain rule tells us how to differentiate a composition: $\frac{dz}{dx} = \frac{dz}{dy}\frac{dy}{dx}$.
# Applied blindly, one parameter at a time, it is also very wasteful. Take the two-layer network
# $h(a) = X_2^\top \sigma(X_1 a)$ with the squared loss $L = (b - X_2^\top \sigma(X_1 a))^2$. Its two
# gradients are
#
# $$\frac{\partial L}{\partial X_2} = -2\,\big(b - X_2^\top \sigma(X_1 a)\big)\,\sigma(X_1 a),
# \qquad
# \frac{\partial L}{\partial X_1} = -2\,\big(b - X_2^\top \sigma(X_1 a)\big)\,\big(X_2 \odot \sigma'(X_1 a)\big)\,a^\top .$$
#
# Both contain the residual $b - X_2^\top \sigma(X_1 a)$ and the hidden values $\sigma(X_1 a)$.
# Computed independently, every gradient recomputes them; in a network of $k$ layers the gradient of
# layer $l$ repeats the whole chain from the loss down to $l$, and the repeated work grows like $k^2$.
#
# The cure is an old idea: **dynamic programming** (Bellman, 1950). Split the problem into sub-problems
# that recur, solve each one once, and keep its answer. There are two ways to organise it:
#
# * **top-down with memoisation**: start from the final problem, recurse, and store each sub-result the
#   first time it is computed;
# * **bottom-up with a table**: start from the smallest problems and fill a table in an order where every
#   entry only needs entries already filled — one single pass.
#
# Backpropagation is the bottom-up version over the computation graph of the network: the
# "sub-problems" are the derivatives of the loss with respect to each intermediate value, and each one
# is obtained from the one just above it.
#
# ### Warm-up: Fibonacci
#
# $F(0) = 0$, $F(1) = 1$, $F(n+2) = F(n) + F(n+1)$. The recursion written as it reads calls itself twice
# per level, and the same $F(i)$ is recomputed again and again. Count the calls:

# %%
def fib_naive(n, counter):
    """The recursion exactly as the definition reads; counter[0] counts the calls."""
    counter[0] += 1
    if n < 2:
        return n
    return fib_naive(n - 1, counter) + fib_naive(n - 2, counter)


print(" n   F(n)    calls of the naive recursion")
for n in (5, 10, 15, 20, 25):
    counter = [0]
    value = fib_naive(n, counter)
    print(f"{n:2d}  {value:6d}  {counter[0]:8d}")


# %% [markdown]
# The number of calls is $2F(n+1) - 1$: it grows like $1.618^n$, the golden ratio to the power $n$.
# Computing $F(90)$ this way takes about $10^{19}$ calls: tens of thousands of years at ten million calls
# per second.
#
# **Exercise 1.** Write `fib_memo(n)`: the same top-down recursion, but each $F(i)$ is stored the first
# time it is computed (in a dict, a list, or with `functools.lru_cache`) and looked up afterwards. Return
# an exact Python `int`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "fib_memo", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fib_memo(n):
    """F(n) top-down: F(n) = F(n-1) + F(n-2), each F(i) computed once and stored."""
    ### BEGIN SOLUTION
    memo = {0: 0, 1: 1}

    def solve(i):
        if i not in memo:
            memo[i] = solve(i - 1) + solve(i - 2)
        return memo[i]

    return solve(n)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_fib_memo", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# fib_memo: exact Python ints from F(0) = 0, F(1) = 1, and a memo that keeps the number of calls linear in n.
for n, want in [(0, 0), (1, 1), (2, 1), (3, 2), (10, 55), (20, 6765)]:
    checks.assert_equal(checks.call(fib_memo, n), want, name=f"fib_memo({n})")
try:
    value, calls = bt.count_calls(checks.call, fib_memo, 60, limit=20_000)
except bt.CallBudgetExceeded:
    raise AssertionError(
        "fib_memo(60) made more than 20,000 Python calls: the recursion computes the same F(i) again and "
        "again. Store each F(i) the first time it is computed and look it up afterwards (diagnosis: no_memo)"
    ) from None
checks.assert_equal(value, 1548008755920, name="fib_memo(60)")
### BEGIN HIDDEN TESTS
for n, want in [(90, 2880067194370816120),
                (300, 222232244629420445529739893461909967206666939096499764990979600)]:
    try:
        value, calls = bt.count_calls(checks.call, fib_memo, n, limit=50 * n)
    except bt.CallBudgetExceeded:
        raise AssertionError(f"fib_memo({n}) made more than {50 * n} Python calls: the memo is not used "
                             "(diagnosis: no_memo)") from None
    checks.assert_equal(value, want, name=f"fib_memo({n})")
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 2.** Write `fib_tab(n)`: bottom-up. Fill $F(0), F(1), \dots, F(n)$ in a loop, each entry
# from the two before it, with no recursion at all.

# %% deletable=false nbgrader={"grade": false, "grade_id": "fib_tab", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fib_tab(n):
    """F(n) bottom-up: table[0] = 0, table[1] = 1, table[i] = table[i-1] + table[i-2] for i = 2..n."""
    ### BEGIN SOLUTION
    table = [0, 1]
    for i in range(2, n + 1):
        table.append(table[i - 1] + table[i - 2])
    return table[n]
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_fib_tab", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# fib_tab: exact Python ints from F(0) = 0, F(1) = 1, filled bottom-up in a loop (no recursion).
for n, want in [(0, 0), (1, 1), (2, 1), (3, 2), (10, 55), (60, 1548008755920)]:
    checks.assert_equal(checks.call(fib_tab, n), want, name=f"fib_tab({n})")
try:
    value, calls = bt.count_calls(checks.call, fib_tab, 2000, limit=1000)
except bt.CallBudgetExceeded:
    raise AssertionError(
        "fib_tab(2000) made more than 1,000 Python calls: a bottom-up table needs no recursion; fill "
        "F(0), F(1), ..., F(n) in a loop (diagnosis: not_bottom_up)"
    ) from None
### BEGIN HIDDEN TESTS
checks.assert_equal(checks.call(fib_tab, 90), 2880067194370816120, name="fib_tab(90)")
checks.assert_equal(checks.call(fib_tab, 300),
                    222232244629420445529739893461909967206666939096499764990979600, name="fib_tab(300)")
checks.assert_equal(len(str(value)), 418, name="number of digits of fib_tab(2000)")
### END HIDDEN TESTS

# %% [markdown]
# Now count the calls of your two versions. `bt.count_calls` counts every Python function call made while
# your function runs (whatever style you used).

# %%
with needs("fib_memo", "fib_tab"):
    print(" n   naive calls   fib_memo calls   fib_tab calls")
    for n in (5, 10, 15, 20, 25, 90):
        naive = 2 * fib_tab(n + 1) - 1
        _, memo_calls = bt.count_calls(fib_memo, n)
        _, tab_calls = bt.count_calls(fib_tab, n)
        print(f"{n:2d}  {naive:>20,d}  {memo_calls:8d}  {tab_calls:8d}")


# %% [markdown]
# The memo turns an exponential number of calls into about $2n$; the table needs a single call and
# $n - 1$ additions. Backpropagation does to derivatives what the table does to Fibonacci numbers.
#
# ## 2. The one-hidden-layer tanh network, written out
#
# For one example $x \in \mathbb{R}^{n_x}$ Lecture 9's network computes
#
# $$\tilde h_i = \sum_{j=1}^{n_x} W^h_{i,j} x_j + b^h_i,\qquad h_i = \tanh(\tilde h_i),\qquad
# \tilde y_i = \sum_{j=1}^{n_h} W^y_{i,j} h_j + b^y_i,\qquad
# \hat y_i = \mathrm{SoftMax}(\tilde y)_i = \frac{e^{\tilde y_i}}{\sum_{j=1}^{n_y} e^{\tilde y_j}},$$
#
# and the loss is the cross-entropy $\ell(\hat y, y) = -\sum_{i} y_i \log \hat y_i$.
#
# **With a batch.** The examples are the rows of $X$ $(B, n_x)$. One matrix product does all of them:
#
# | quantity | formula | shape |
# | --- | --- | --- |
# | `htilde` | $\tilde H = X W_h^\top + b_h^\top$ | $(B, n_h)$ |
# | `h` | $H = \tanh(\tilde H)$ | $(B, n_h)$ |
# | `ytilde` | $\tilde Y = H W_y^\top + b_y^\top$ | $(B, n_y)$ |
# | `yhat` | $\hat Y = \mathrm{SoftMax}(\tilde Y)$, row by row | $(B, n_y)$ |
#
# The biases are stored as columns $(n, 1)$, so they enter as the row $b^\top$ $(1, n)$, added to every
# example (broadcasting). The loss of the batch is the **mean** over its rows,
# $L = \frac1B \sum_{b=1}^{B} \ell(\hat Y_b, Y_b)$: that is the empirical risk Lecture 9 minimises, and
# its gradient is the mean of the per-example gradients.
#
# **Exercise 3.** `init_params(nx, nh, ny, generator=None)`: weights `0.3 * randn` (drawn with
# `generator`), biases zeros, all float32.

# %% deletable=false nbgrader={"grade": false, "grade_id": "init_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def init_params(nx, nh, ny, generator=None):
    """{'Wh': 0.3 randn(nh, nx), 'bh': zeros(nh, 1), 'Wy': 0.3 randn(ny, nh), 'by': zeros(ny, 1)}, float32."""
    ### BEGIN SOLUTION
    return {
        "Wh": 0.3 * torch.randn(nh, nx, generator=generator),
        "bh": torch.zeros(nh, 1),
        "Wy": 0.3 * torch.randn(ny, nh, generator=generator),
        "by": torch.zeros(ny, 1),
    }
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_init_params", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# init_params: keys and shapes of Lecture 9's lab code, float32, zero biases, weights of standard deviation 0.3 drawn
# with the generator (same seed, same weights).
p = checks.call(init_params, 40, 60, 30, generator=torch.Generator().manual_seed(0))
if not isinstance(p, dict) or sorted(p) != ["Wh", "Wy", "bh", "by"]:
    raise AssertionError(f"init_params must return a dict with keys 'Wh', 'bh', 'Wy', 'by', got {p!r:.80} "
                         "(diagnosis: wrong_shape)")
for key, shape in [("Wh", (60, 40)), ("bh", (60, 1)), ("Wy", (30, 60)), ("by", (30, 1))]:
    if not isinstance(p[key], torch.Tensor) or tuple(p[key].shape) != shape or p[key].dtype != torch.float32:
        raise AssertionError(f"init_params(40, 60, 30)[{key!r}] must be a float32 tensor of shape {shape}, got "
                             f"{getattr(p[key], 'dtype', type(p[key]).__name__)} {tuple(getattr(p[key], 'shape', ()))} "
                             "(diagnosis: wrong_shape)")
    if key.startswith("b"):
        checks.assert_close(p[key], torch.zeros(shape), name=f"init_params(40, 60, 30)[{key!r}] (biases start at 0)")
for key in ("Wh", "Wy"):
    std, mean = float(p[key].std()), float(p[key].mean())
    if not (0.27 < std < 0.33 and abs(mean) < 0.03):
        raise AssertionError(f"init_params(...)[{key!r}] has mean {mean:.3f} and standard deviation {std:.3f}; "
                             "expected 0.3 * randn: mean 0, standard deviation 0.3 (diagnosis: values)")
again = checks.call(init_params, 40, 60, 30, generator=torch.Generator().manual_seed(0))
other = checks.call(init_params, 40, 60, 30, generator=torch.Generator().manual_seed(1))
if not torch.equal(again["Wh"], p["Wh"]) or torch.equal(other["Wh"], p["Wh"]):
    raise AssertionError("init_params must draw its weights with the generator it is given: the same seed must "
                         "give the same weights, another seed other weights (diagnosis: ignores_generator)")
### BEGIN HIDDEN TESTS
q = checks.call(init_params, 1, 1, 1)
for key in ("bh", "by"):
    checks.assert_close(q[key], torch.zeros(1, 1), name=f"init_params(1, 1, 1)[{key!r}]")
for key in ("Wh", "Wy"):
    if q[key].shape != (1, 1) or q[key].dtype != torch.float32:
        raise AssertionError(f"init_params(1, 1, 1)[{key!r}] must be float32 of shape (1, 1) (diagnosis: wrong_shape)")
q = checks.call(init_params, 3, 5, 2, generator=torch.Generator().manual_seed(7))
for key, shape in [("Wh", (5, 3)), ("bh", (5, 1)), ("Wy", (2, 5)), ("by", (2, 1))]:
    if tuple(q[key].shape) != shape:
        raise AssertionError(f"init_params(3, 5, 2)[{key!r}] has shape {tuple(q[key].shape)}, expected {shape} "
                             "(diagnosis: wrong_shape)")
### END HIDDEN TESTS

# %% [markdown]
# ### A numerically stable softmax
#
# Written as it reads, $e^{z_i} / \sum_j e^{z_j}$ breaks down as soon as an entry is large: in float32
# $e^{89}$ is already `inf`, and `inf / inf` is `nan`. Very negative rows fail the other way: every
# $e^{z_j}$ underflows to 0 and the result is `0 / 0`.

# %%
z = torch.tensor([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0], [-1000.0, -999.0, -998.0]])
naive = torch.exp(z) / torch.exp(z).sum(dim=1, keepdim=True)
print("naive softmax, row by row:\n", naive)


# %% [markdown]
# The way out is that softmax does not change when the same number $c$ is subtracted from every entry
# of a row:
#
# $$\frac{e^{z_i - c}}{\sum_j e^{z_j - c}} = \frac{e^{-c}\,e^{z_i}}{e^{-c}\sum_j e^{z_j}} = \frac{e^{z_i}}{\sum_j e^{z_j}}.$$
#
# Choose $c = \max_j z_j$: then every exponent is $\le 0$, so nothing overflows, and the largest one is
# exactly $e^0 = 1$, so the denominator is at least 1 and never 0.
#
# **Exercise 4.** `softmax(z)`: the row-wise softmax of `z` $(B, K)$, finite for entries up to $10^4$ in
# magnitude, same dtype as `z`, without modifying `z`. (`torch.softmax` is allowed, but write it once
# yourself: it is three lines.)

# %% deletable=false nbgrader={"grade": false, "grade_id": "softmax", "locked": false, "schema_version": 3, "solution": true, "task": false}
def softmax(z):
    """Row-wise exp(z - max) / sum(exp(z - max)), shape (B, K)."""
    ### BEGIN SOLUTION
    shifted = z - z.max(dim=1, keepdim=True).values  # (B, K), every entry <= 0
    e = torch.exp(shifted)
    return e / e.sum(dim=1, keepdim=True)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_softmax", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# softmax: row-wise values, rows summing to 1, finite for entries of size 1e4 in float32 and float64, dtype kept.
z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 5.0, 2.0]], dtype=torch.float64)
got = checks.call(softmax, z)
if isinstance(got, torch.Tensor) and got.shape == z.shape and checks.close(got, torch.softmax(z, dim=0)):
    raise AssertionError("softmax(z) normalised each column; it must normalise each row (one row = one "
                         "example): reduce over dim=1 (diagnosis: wrong_dim)")
# softmax rounds its logits (z - max, or a logsumexp as large as z): magnitude max|z| in the rule
checks.assert_close(got, torch.exp(z - torch.logsumexp(z, dim=1, keepdim=True)), name="softmax(z)",
                    magnitude=float(z.abs().max()))
big = [[1e4, 0.0, -1e4], [-1e4, -1e4 + 1, -1e4 + 3], [5e3, 5e3, 5e3], [1e4, 1e4 - 1, 1e4 - 2]]
for dtype in (torch.float32, torch.float64):
    zb = torch.tensor(big, dtype=dtype)
    zb_before = zb.clone()
    got = checks.call(softmax, zb)
    if isinstance(got, torch.Tensor) and not bool(torch.isfinite(got).all()):
        raise AssertionError(f"softmax gives nan or inf for entries of size 1e4 in {dtype}: exp(1e4) overflows. "
                             "Subtract each row's maximum before taking exp (diagnosis: nan)")
    ref = torch.exp(zb.double() - torch.logsumexp(zb.double(), dim=1, keepdim=True))
    checks.assert_close(got, ref, name=f"softmax(z) for large entries in {dtype}", dtype=dtype,
                        magnitude=float(zb.abs().max()))
    if not torch.equal(zb, zb_before):
        raise AssertionError("softmax modified its input z: compute a new tensor (z = z - m changes nothing "
                             "outside, z -= m does) (diagnosis: modifies_input)")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(3)
for shape, scale in [((1, 1), 1.0), ((1, 5), 3.0), ((7, 3), 1e3), ((4, 10), 1e4)]:
    for dtype in (torch.float32, torch.float64):
        zz = (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
        ref = torch.exp(zz.double() - torch.logsumexp(zz.double(), dim=1, keepdim=True))
        checks.assert_close(checks.call(softmax, zz.clone()), ref, name=f"softmax of a {shape} {dtype} input",
                            dtype=dtype, magnitude=float(zz.abs().max()))
### END HIDDEN TESTS

# %% [markdown]
# ### Cross-entropy
#
# **Exercise 5.** `cross_entropy(yhat, Y)`: the mean over the batch of $-\sum_k Y_{b,k} \log \hat Y_{b,k}$,
# a scalar tensor (shape `()`) of the inputs' dtype.

# %% deletable=false nbgrader={"grade": false, "grade_id": "cross_entropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cross_entropy(yhat, Y):
    """Mean over the batch of -sum_k Y[b, k] log yhat[b, k]; a scalar tensor."""
    ### BEGIN SOLUTION
    return -(Y * torch.log(yhat)).sum(dim=1).mean()
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_cross_entropy", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# cross_entropy: a scalar tensor, the batch mean (not the sum) of -log of the probability of the true class.
yhat = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.25, 0.25, 0.5]], dtype=torch.float64)
labels = [0, 2, 0, 1]
Y = torch.zeros(4, 3, dtype=torch.float64)
Y[range(4), labels] = 1.0
want = torch.tensor(sum(-math.log(float(yhat[i, c])) for i, c in enumerate(labels)) / 4, dtype=torch.float64)
checks.assert_close(checks.call(cross_entropy, yhat, Y), want, name="cross_entropy(yhat, Y)", batch_size=4)
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(5)
for B, K in [(1, 2), (1, 10), (9, 4), (32, 10)]:
    for dtype in (torch.float32, torch.float64):
        p = torch.softmax(torch.randn(B, K, generator=g, dtype=torch.float64) * 2, dim=1)
        lab = torch.randint(0, K, (B,), generator=g)
        YY = torch.nn.functional.one_hot(lab, K).to(torch.float64)
        want = torch.tensor(sum(-math.log(float(p[i, int(c)])) for i, c in enumerate(lab)) / B,
                            dtype=torch.float64)
        checks.assert_close(checks.call(cross_entropy, p.to(dtype), YY.to(dtype)), want,
                            name=f"cross_entropy with B={B}, {dtype}", dtype=dtype, batch_size=B)
### END HIDDEN TESTS

# %% [markdown]
# ### The forward pass
#
# **Exercise 6.** `forward(params, X)` returns a dict with the input and every intermediate value the
# backward pass will need: `'X'`, `'htilde'`, `'h'`, `'ytilde'`, `'yhat'`, with the formulas and shapes of
# the table above. Use your `softmax`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def forward(params, X):
    """htilde = X Wh^T + bh^T, h = tanh(htilde), ytilde = h Wy^T + by^T, yhat = softmax(ytilde)."""
    ### BEGIN SOLUTION
    htilde = X @ params["Wh"].T + params["bh"].T  # (B, nh)
    h = torch.tanh(htilde)  # (B, nh)
    ytilde = h @ params["Wy"].T + params["by"].T  # (B, ny)
    return {"X": X, "htilde": htilde, "h": h, "ytilde": ytilde, "yhat": softmax(ytilde)}
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# forward: the five keys with shapes (B, nx), (B, nh), (B, nh), (B, ny), (B, ny), h = tanh(htilde),
# yhat = softmax(ytilde), and the biases added to every example. (This test swaps in torch's softmax while
# it runs, so it grades forward alone.)
_your_softmax = globals().get("softmax")
softmax = lambda z: torch.softmax(z, dim=1)  # noqa: E731
try:
    params, X, Y = bt.random_mlp_case(3, 4, 2, 5, seed=11)
    out = checks.call(forward, params, X)
    keys = ["X", "htilde", "h", "ytilde", "yhat"]
    if not isinstance(out, dict) or any(k not in out for k in keys):
        raise AssertionError(f"forward must return a dict with the keys {keys}; got "
                             f"{sorted(out) if isinstance(out, dict) else type(out).__name__} (diagnosis: wrong_shape)")
    for key, shape in [("X", (5, 3)), ("htilde", (5, 4)), ("h", (5, 4)), ("ytilde", (5, 2)), ("yhat", (5, 2))]:
        got = out[key]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape or got.dtype != torch.float64:
            raise AssertionError(
                f"forward(params, X)[{key!r}] with B=5, nx=3, nh=4, ny=2 must be a float64 tensor of shape {shape}, "
                f"got {getattr(got, 'dtype', type(got).__name__)} {tuple(getattr(got, 'shape', ()))}. Rows are "
                "examples: htilde = X Wh^T + bh^T (diagnosis: wrong_shape)")
    checks.assert_close(out["X"], X, name="forward(params, X)['X'] (the input itself)")
    checks.assert_close(out["h"], torch.tanh(out["htilde"]), name="forward(...)['h'] compared with tanh(htilde)")
    checks.assert_close(out["yhat"], torch.softmax(out["ytilde"], dim=1),
                        name="forward(...)['yhat'] compared with the row softmax of ytilde")
    zero_in = checks.call(forward, params, torch.zeros(2, 3, dtype=torch.float64))
    checks.assert_close(zero_in["htilde"], params["bh"].T.expand(2, 4),
                        name="forward(params, zeros(2, nx))['htilde'] (for X = 0 it must be bh^T on every row)")
    ### BEGIN HIDDEN TESTS
    for (nx, nh, ny, B, dtype, seed) in [(3, 4, 2, 1, torch.float64, 1), (5, 7, 3, 9, torch.float64, 2),
                                         (2, 6, 6, 4, torch.float32, 3), (8, 3, 10, 1, torch.float32, 4)]:
        params, X, Y = bt.random_mlp_case(nx, nh, ny, B, dtype=dtype, seed=seed)
        before = {k: v.clone() for k, v in params.items()}
        out = checks.call(forward, params, X)
        p64 = {k: v.double() for k, v in params.items()}
        ht = torch.einsum("bj,ij->bi", X.double(), p64["Wh"]) + p64["bh"][:, 0]
        hh = torch.tanh(ht)
        yt = torch.einsum("bj,ij->bi", hh, p64["Wy"]) + p64["by"][:, 0]
        refs = {"X": X.double(), "htilde": ht, "h": hh, "ytilde": yt,
                "yhat": torch.exp(yt - torch.logsumexp(yt, dim=1, keepdim=True))}
        for key, ref in refs.items():
            checks.assert_close(out[key], ref, name=f"forward(...)[{key!r}] with B={B}, {dtype}", dtype=dtype,
                                batch_size=B)
        for k in before:
            if not torch.equal(before[k], params[k]):
                raise AssertionError(f"forward modified params[{k!r}] (diagnosis: modifies_input)")
    ### END HIDDEN TESTS
finally:
    softmax = _your_softmax

# %% [markdown]
# ## 3. The backward pass, derived
#
# We want the gradient of $L = \frac1B\sum_b \ell_b$ with respect to the four parameters. Work with one
# example first (drop the index $b$), then put the batch back.
#
# ### The output delta: $\delta^y = \hat y - y$
#
# Write $\ell = -\sum_k y_k \log \hat y_k$ with $\log \hat y_k = \tilde y_k - \log \sum_j e^{\tilde y_j}$. Then
#
# $$\frac{\partial \log \hat y_k}{\partial \tilde y_i} = [k = i] - \frac{e^{\tilde y_i}}{\sum_j e^{\tilde y_j}} = [k = i] - \hat y_i,$$
#
# so
#
# $$\delta^y_i := \frac{\partial \ell}{\partial \tilde y_i} = -\sum_k y_k\big([k = i] - \hat y_i\big) = -y_i + \hat y_i \sum_k y_k = \hat y_i - y_i ,$$
#
# because the one-hot target sums to 1. Softmax and cross-entropy together have the simplest possible
# derivative: prediction minus target.
#
# Since $\tilde y_i = \sum_j W^y_{i,j} h_j + b^y_i$, each $W^y_{i,j}$ only reaches the loss through
# $\tilde y_i$, with $\partial \tilde y_i / \partial W^y_{i,j} = h_j$:
#
# $$\frac{\partial \ell}{\partial W^y_{i,j}} = \delta^y_i\, h_j, \qquad \frac{\partial \ell}{\partial b^y_i} = \delta^y_i .$$
#
# ### The hidden delta: $\delta^h = (1 - h^2) \odot (\delta^y W_y)$
#
# A hidden unit $h_i$ feeds **every** output: $\partial \tilde y_j / \partial h_i = W^y_{j,i}$. The
# multivariate chain rule sums over those paths, and $\tanh' = 1 - \tanh^2$ gives
#
# $$\delta^h_i := \frac{\partial \ell}{\partial \tilde h_i}
#   = \frac{\partial h_i}{\partial \tilde h_i}\sum_{j=1}^{n_y} \frac{\partial \ell}{\partial \tilde y_j}\frac{\partial \tilde y_j}{\partial h_i}
#   = (1 - h_i^2)\sum_{j=1}^{n_y} \delta^y_j W^y_{j,i},$$
#
# and, exactly as for the output layer,
# $\frac{\partial \ell}{\partial W^h_{i,j}} = \delta^h_i x_j$, $\frac{\partial \ell}{\partial b^h_i} = \delta^h_i$.
#
# This is the dynamic programming step: $\delta^y$ is computed **once** and reused for every entry of $W_y$
# and for $\delta^h$, and $\delta^h$ once for all $n_h \times n_x$ entries of $W_h$, instead of re-deriving the
# chain through the softmax for each weight.
#
# ### Putting the batch back
#
# Stack the deltas of the $B$ examples as rows: $\Delta^y = \hat Y - Y$ $(B, n_y)$ and
# $\Delta^h = (1 - H^2) \odot (\Delta^y W_y)$ $(B, n_h)$, with $\odot$ the element-wise product. The loss is
# the mean of the examples' losses, so each gradient is the mean of the examples' gradients:
#
# | gradient | batch formula | shape |
# | --- | --- | --- |
# | $\nabla_{W_y}$ | $\frac1B (\Delta^y)^\top H$ | $(n_y, n_h)$ |
# | $\nabla_{b_y}$ | $\frac1B$ (sum of the rows of $\Delta^y$), as a column | $(n_y, 1)$ |
# | $\nabla_{W_h}$ | $\frac1B (\Delta^h)^\top X$ | $(n_h, n_x)$ |
# | $\nabla_{b_h}$ | $\frac1B$ (sum of the rows of $\Delta^h$), as a column | $(n_h, 1)$ |
#
# The matrix product $(\Delta^y)^\top H$ sums the outer products $\delta^y_b h_b^\top$ over the batch by
# itself. A bias is shared by all the examples, so its gradient sums their deltas; its shape must stay
# that of the bias, $(n, 1)$, with no batch axis left.
#
# **Why average?** The mean estimates the gradient of the risk over the whole data distribution: as $B$
# grows it settles to a fixed size, so the same step size $\eta$ works for small and large batches. A sum
# grows like $B$, and the step size would have to shrink like $1/B$ to compensate:

# %%
print("   B   |grad Wh| (mean)   |grad Wh| (sum = B x mean)")
for B in (1, 8, 64, 512):
    params_demo, X_demo, Y_demo = bt.random_mlp_case(10, 16, 4, B, seed=0)
    _, g_demo = bt.mlp_reference(params_demo, X_demo, Y_demo)  # gradients by torch.autograd
    norm = float(g_demo["Wh"].norm())
    print(f"{B:4d}   {norm:14.4f}   {B * norm:14.4f}")


# %% [markdown]
# **Exercise 7.** `backward(params, outputs, Y)`: the gradients of `cross_entropy(outputs['yhat'], Y)` for
# the four parameters, a dict with the keys and shapes of `params`, by hand from the values saved by the
# forward pass. No autograd: the grade cells call it under `torch.no_grad()` on tensors that do not
# require grad. Do not modify `params` or `outputs`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def backward(params, outputs, Y):
    """delta_y = yhat - Y; delta_h = (1 - h^2) * (delta_y Wy); grads = delta^T (input) / B, biases summed / B."""
    ### BEGIN SOLUTION
    B = Y.shape[0]
    delta_y = outputs["yhat"] - Y  # (B, ny)
    delta_h = (delta_y @ params["Wy"]) * (1 - outputs["h"] ** 2)  # (B, nh)
    return {
        "Wy": delta_y.T @ outputs["h"] / B,  # (ny, nh)
        "by": delta_y.sum(dim=0).unsqueeze(1) / B,  # (ny, 1)
        "Wh": delta_h.T @ outputs["X"] / B,  # (nh, nx)
        "bh": delta_h.sum(dim=0).unsqueeze(1) / B,  # (nh, 1)
    }
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_backward_output_layer", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# backward, output layer: grads['Wy'] and grads['by'] against torch.autograd (batch of 5, float64, non-zero
# biases); outputs come from a correct forward computed here, and backward runs under torch.no_grad().
params, X, Y = bt.random_mlp_case(3, 4, 2, 5, seed=21)
outputs, _ = bt.mlp_reference(params, X, Y)
grads = bt.call_backward(backward, params, outputs, Y)
bt.assert_mlp_grads_close(grads, params, X, Y, keys=["Wy", "by"], name="backward(params, outputs, Y)")
### BEGIN HIDDEN TESTS
for (nx, nh, ny, B, dtype, seed) in [(2, 5, 3, 1, torch.float64, 1), (6, 4, 4, 7, torch.float64, 2),
                                     (4, 8, 10, 16, torch.float64, 3), (3, 6, 5, 3, torch.float32, 4)]:
    params, X, Y = bt.random_mlp_case(nx, nh, ny, B, dtype=dtype, seed=seed)
    outputs, _ = bt.mlp_reference(params, X, Y)
    grads = bt.call_backward(backward, params, outputs, Y)
    bt.assert_mlp_grads_close(grads, params, X, Y, keys=["Wy", "by"], name=f"backward with B={B}, {dtype}")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_backward_hidden_layer", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# backward, hidden layer: grads['Wh'] and grads['bh'] against torch.autograd (batch of 5, float64, non-zero
# biases); a missing factor 1 - h^2 is recognised and named.
params, X, Y = bt.random_mlp_case(3, 4, 2, 5, seed=22)
outputs, _ = bt.mlp_reference(params, X, Y)
grads = bt.call_backward(backward, params, outputs, Y)
bt.assert_mlp_grads_close(grads, params, X, Y, keys=["Wh", "bh"], name="backward(params, outputs, Y)")
### BEGIN HIDDEN TESTS
for (nx, nh, ny, B, dtype, seed) in [(2, 5, 3, 1, torch.float64, 5), (6, 4, 4, 7, torch.float64, 6),
                                     (4, 8, 10, 16, torch.float64, 7), (3, 6, 5, 3, torch.float32, 8)]:
    params, X, Y = bt.random_mlp_case(nx, nh, ny, B, dtype=dtype, seed=seed)
    outputs, _ = bt.mlp_reference(params, X, Y)
    grads = bt.call_backward(backward, params, outputs, Y)
    bt.assert_mlp_grads_close(grads, params, X, Y, keys=["Wh", "bh"], name=f"backward with B={B}, {dtype}")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_backward_batch", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# backward and the batch: right for a batch of one example, and a batch made of every example twice has
# the same (mean) gradient as the batch itself.
params, X, Y = bt.random_mlp_case(3, 4, 2, 1, seed=23)
outputs, _ = bt.mlp_reference(params, X, Y)
grads = bt.call_backward(backward, params, outputs, Y)
bt.assert_mlp_grads_close(grads, params, X, Y, name="backward with a batch of one example")
params, X, Y = bt.random_mlp_case(3, 4, 2, 6, seed=24)
X2, Y2 = torch.cat([X, X]), torch.cat([Y, Y])
outputs2, _ = bt.mlp_reference(params, X2, Y2)
grads2 = bt.call_backward(backward, params, outputs2, Y2)
bt.assert_mlp_grads_close(grads2, params, X2, Y2, name="backward on a batch of 12 (every example twice)")
### BEGIN HIDDEN TESTS
for B, dtype, seed in [(1, torch.float32, 9), (33, torch.float64, 10), (64, torch.float32, 11)]:
    params, X, Y = bt.random_mlp_case(5, 7, 3, B, dtype=dtype, seed=seed)
    outputs, _ = bt.mlp_reference(params, X, Y)
    grads = bt.call_backward(backward, params, outputs, Y)
    bt.assert_mlp_grads_close(grads, params, X, Y, name=f"backward with B={B}, {dtype}")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_backward_no_autograd", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# backward by hand: works under torch.no_grad() on float32 tensors that do not require grad, keeps float32,
# and leaves params and outputs unchanged.
params, X, Y = bt.random_mlp_case(4, 6, 3, 8, dtype=torch.float32, seed=25)
outputs, _ = bt.mlp_reference(params, X, Y)
grads = bt.call_backward(backward, params, outputs, Y)
bt.assert_mlp_grads_close(grads, params, X, Y, name="backward in float32")
### BEGIN HIDDEN TESTS
params, X, Y = bt.random_mlp_case(2, 3, 2, 1, dtype=torch.float32, seed=26)
outputs, _ = bt.mlp_reference(params, X, Y)
grads = bt.call_backward(backward, params, outputs, Y)
bt.assert_mlp_grads_close(grads, params, X, Y, name="backward in float32 with B=1")
if any(isinstance(g, torch.Tensor) and g.requires_grad for g in grads.values()):
    raise AssertionError("backward returned tensors that require grad: it must not build an autograd graph "
                         "(diagnosis: uses_autograd)")
### END HIDDEN TESTS

# %% [markdown]
# ### Checking against autograd
#
# `torch.autograd` gives the same gradients without any derivation: mark the parameters with
# `requires_grad`, run the forward pass and the loss, call `loss.backward()`, and read `.grad`. The table
# compares your hand-written gradients with it, parameter by parameter (max absolute difference and
# relative error), in float64 and in float32.

# %%
with needs("forward", "cross_entropy", "backward"):
    for dtype in (torch.float64, torch.float32):
        params, X, Y = bt.random_mlp_case(5, 7, 4, 16, dtype=dtype, seed=3)
        leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        loss = cross_entropy(forward(leaves, X)["yhat"], Y)
        loss.backward()
        by_autograd = {k: v.grad for k, v in leaves.items()}
        with torch.no_grad():
            by_hand = backward(params, forward(params, X), Y)
        print(f"{dtype}, B = 16, loss = {loss.item():.6f}")
        print(checks.grad_table(by_hand, by_autograd), "\n")


# %% [markdown]
# In float64 the two agree to about $10^{-16}$ relative error: the derivation is exact, and what is left
# is rounding. In float32 the agreement is about $10^{-7}$, the precision of single floats.
#
# ## 4. Training
#
# **Exercise 8.** `sgd_step(params, grads, eta)`: for every key, `p -= eta * g`, **in place** (the dict
# keeps the same tensor objects); returns `None`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "sgd_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sgd_step(params, grads, eta):
    """In place, for every key: params[key] -= eta * grads[key]; returns None."""
    ### BEGIN SOLUTION
    for key, g in grads.items():
        params[key].sub_(eta * g)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_sgd_step", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# sgd_step: p - eta * g for every key, in place (same tensor objects), returns None, grads unchanged.
params, X, Y = bt.random_mlp_case(3, 4, 2, 5, seed=31)
_, grads = bt.mlp_reference(params, X, Y)
objects = {k: v for k, v in params.items()}
want = {k: params[k] - 0.1 * grads[k] for k in params}
grads_before = {k: g.clone() for k, g in grads.items()}
result = checks.call(sgd_step, params, grads, 0.1)
if result is not None:
    raise AssertionError(f"sgd_step must return None (it changes params in place), got {type(result).__name__} "
                         "(diagnosis: values)")
for k in objects:
    if params[k] is not objects[k]:
        raise AssertionError(f"sgd_step replaced params[{k!r}] by a new tensor; update it in place "
                             "(params[key] -= eta * g, or .sub_) so every reference to it sees the new value "
                             "(diagnosis: not_in_place)")
checks.assert_grads_close(params, want, name="params after sgd_step(params, grads, 0.1)")
checks.assert_grads_close(grads, grads_before, name="grads after sgd_step (they must not change)")
### BEGIN HIDDEN TESTS
params, X, Y = bt.random_mlp_case(5, 2, 6, 3, dtype=torch.float32, seed=32)
_, grads = bt.mlp_reference(params, X, Y)
grads = {k: g.float() for k, g in grads.items()}
objects = dict(params)
want = {k: params[k].double() - 0.37 * grads[k].double() for k in params}
checks.call(sgd_step, params, grads, 0.37)
for k in objects:
    if params[k] is not objects[k]:
        raise AssertionError(f"sgd_step replaced params[{k!r}] (diagnosis: not_in_place)")
checks.assert_grads_close(params, want, name="params after sgd_step in float32", dtype=torch.float32)
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 9.** `accuracy(yhat, Y)`: the fraction of rows whose argmax agree, as a Python `float`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "accuracy", "locked": false, "schema_version": 3, "solution": true, "task": false}
def accuracy(yhat, Y):
    """Fraction of rows b with argmax yhat[b] == argmax Y[b], a Python float."""
    ### BEGIN SOLUTION
    return (yhat.argmax(dim=1) == Y.argmax(dim=1)).double().mean().item()
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_accuracy", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# accuracy: a Python float, the fraction of rows where the predicted and the true class agree.
yhat = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.2, 0.5, 0.3]])
Y = torch.tensor([[1.0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]])
checks.assert_python_float(checks.call(accuracy, yhat, Y), 0.75, name="accuracy(yhat, Y) (3 of 4 right)")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(41)
for B, K in [(1, 3), (1, 10), (50, 10), (7, 2)]:
    scores = torch.randn(B, K, generator=g, dtype=torch.float64)
    truth = torch.randint(0, K, (B,), generator=g)
    YY = torch.nn.functional.one_hot(truth, K).to(torch.float64)
    right = sum(1 for b in range(B) if max(range(K), key=lambda k: float(scores[b, k])) == int(truth[b]))
    checks.assert_python_float(checks.call(accuracy, torch.softmax(scores, 1), YY), right / B,
                               name=f"accuracy with B={B}, K={K}")
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 10.** `train_mlp(params, X, Y, eta, nb_epochs, batch_size, generator=None)`: mini-batch SGD.
# Each epoch shuffles the examples with `torch.randperm(N, generator=generator)`, cuts them into batches of
# `batch_size` (the last one may be smaller), and for each batch runs `forward`, `backward` and `sgd_step`.
# Return the list of the epochs' mean training losses (Python floats), one per epoch.

# %% deletable=false nbgrader={"grade": false, "grade_id": "train_mlp", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_mlp(params, X, Y, eta, nb_epochs, batch_size, generator=None):
    """Mini-batch SGD on cross_entropy; returns the list of per-epoch mean training losses."""
    ### BEGIN SOLUTION
    N = X.shape[0]
    losses = []
    for _ in range(nb_epochs):
        order = torch.randperm(N, generator=generator)
        batch_losses = []
        for start in range(0, N, batch_size):
            idx = order[start:start + batch_size]
            outputs = forward(params, X[idx])
            batch_losses.append(float(cross_entropy(outputs["yhat"], Y[idx])))
            sgd_step(params, backward(params, outputs, Y[idx]), eta)
        losses.append(sum(batch_losses) / len(batch_losses))
    return losses
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_train_mlp", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# train_mlp: one Python float per epoch, a loss that falls on an easy problem (two separated clusters), the
# parameters trained in place, and the same losses when run twice with generators of the same seed.
# (The public part uses your forward, backward and sgd_step: make their tests pass first.)
def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    points = torch.randn(n, 2, generator=g) * 0.5 + (labels[:, None] * 2.0 - 1.0) * 1.5
    return points, torch.nn.functional.one_hot(labels, 2).float()

def _start_params(seed):
    g = torch.Generator().manual_seed(seed)
    return {"Wh": torch.randn(8, 2, generator=g) * 0.5, "bh": torch.randn(8, 1, generator=g) * 0.1,
            "Wy": torch.randn(2, 8, generator=g) * 0.5, "by": torch.randn(2, 1, generator=g) * 0.1}

Xb, Yb = _blobs(64, 0)
params = _start_params(1)
Wh_start = params["Wh"].clone()
losses = checks.call(train_mlp, params, Xb, Yb, 0.5, 12, 16, generator=torch.Generator().manual_seed(2))
if not isinstance(losses, list) or len(losses) != 12:
    raise AssertionError(f"train_mlp(..., nb_epochs=12, ...) must return a list of 12 losses, got "
                         f"{type(losses).__name__} of length {len(losses) if hasattr(losses, '__len__') else '?'} "
                         "(diagnosis: wrong_shape)")
if not all(type(v) is float for v in losses):
    raise AssertionError("train_mlp must return Python floats (use float(loss) or loss.item()), got "
                         f"{type(losses[0]).__name__} (diagnosis: wrong_dtype)")
if not losses[-1] < 0.5 * losses[0]:
    raise AssertionError(f"on two well-separated clusters the loss should fall quickly; it went from {losses[0]:.4f} "
                         f"to {losses[-1]:.4f} in 12 epochs (diagnosis: values)")
if torch.equal(params["Wh"], Wh_start):
    raise AssertionError("train_mlp did not change params: it must update the dict it is given, with sgd_step "
                         "(diagnosis: values)")
again = checks.call(train_mlp, _start_params(1), Xb, Yb, 0.5, 12, 16, generator=torch.Generator().manual_seed(2))
if again != losses:
    raise AssertionError("two runs from the same parameters with generators of the same seed gave different "
                         "losses: draw every random number (the shuffling) with the generator argument "
                         "(diagnosis: ignores_generator)")
### BEGIN HIDDEN TESTS
# Graded with correct forward/backward/sgd_step/cross_entropy swapped in, so only train_mlp is judged.
def _ref_forward(p, XX):
    F = torch.nn.functional
    ht = F.linear(XX, p["Wh"], p["bh"][:, 0])
    hh = torch.tanh(ht)
    yt = F.linear(hh, p["Wy"], p["by"][:, 0])
    return {"X": XX, "htilde": ht, "h": hh, "ytilde": yt, "yhat": torch.softmax(yt, dim=1)}

def _ref_backward(p, outputs, YY):
    with torch.enable_grad():
        leaf = {k: v.detach().clone().requires_grad_(True) for k, v in p.items()}
        loss = torch.nn.functional.nll_loss(torch.log(_ref_forward(leaf, outputs["X"])["yhat"]), YY.argmax(1))
        gs = torch.autograd.grad(loss, list(leaf.values()))
    return {k: g.detach() for k, g in zip(leaf, gs)}

def _ref_sgd(p, gs, eta):
    with torch.no_grad():
        for k in gs:
            p[k].add_(gs[k], alpha=-eta)

_saved = {name: globals().get(name) for name in ("forward", "backward", "sgd_step", "cross_entropy", "softmax")}
forward, backward, sgd_step = _ref_forward, _ref_backward, _ref_sgd
cross_entropy = lambda yh, YY: torch.nn.functional.nll_loss(torch.log(yh), YY.argmax(1))  # noqa: E731
softmax = lambda z: torch.softmax(z, dim=1)  # noqa: E731
try:
    # a partial last batch, batch_size 1, batch_size > N; each helper called here is a call back from the
    # student's kernel, so the runs are short (their loss still falls to at most 0.47x its start, for the
    # three usual ways of reporting an epoch's loss)
    for n, bs, epochs, dtype in [(34, 16, 6, torch.float32), (6, 1, 4, torch.float64), (30, 64, 12, torch.float64)]:
        Xh, Yh = _blobs(n, 5)
        start = {k: v.to(dtype) for k, v in _start_params(6).items()}
        Xh, Yh = Xh.to(dtype), Yh.to(dtype)
        p1 = {k: v.clone() for k, v in start.items()}
        l1 = checks.call(train_mlp, p1, Xh, Yh, 0.5, epochs, bs, generator=torch.Generator().manual_seed(7))
        if not isinstance(l1, list) or len(l1) != epochs or not all(type(v) is float for v in l1):
            raise AssertionError(f"train_mlp with N={n}, batch_size={bs}: expected a list of {epochs} Python floats "
                                 "(diagnosis: wrong_shape)")
        if not l1[-1] < 0.7 * l1[0]:
            raise AssertionError(f"train_mlp with N={n}, batch_size={bs}: the loss went from {l1[0]:.4f} to "
                                 f"{l1[-1]:.4f} (diagnosis: values)")
        p2 = {k: v.clone() for k, v in start.items()}
        l2 = checks.call(train_mlp, p2, Xh, Yh, 0.5, epochs, bs, generator=torch.Generator().manual_seed(7))
        if l1 != l2:
            raise AssertionError("train_mlp is not reproducible with a seeded generator (diagnosis: ignores_generator)")
    l3 = checks.call(train_mlp, {k: v.clone() for k, v in _start_params(6).items()}, *_blobs(8, 8), 0.5, 3, 4)
    if len(l3) != 3:
        raise AssertionError("train_mlp without a generator must also work (diagnosis: crash)")
finally:
    for name, fn in _saved.items():
        globals()[name] = fn
### END HIDDEN TESTS

# %% [markdown]
# ### A 2-D toy problem: the decision boundary as training goes
#
# Two interleaving half-moons cannot be separated by a line. A hidden layer of 16 tanh units bends the
# boundary; the snapshots show it taking shape. The progress bar follows the epochs.

# %%
with needs("init_params", "forward", "backward", "sgd_step", "train_mlp", "accuracy"):
    gen = torch.Generator().manual_seed(0)
    X_moons, labels_moons = data.moons(200, noise=0.12, generator=gen)
    Y_moons = data.one_hot(labels_moons, 2)
    params_moons = init_params(2, 16, 2, generator=gen)
    snapshots = [0, 3, 10, 30, 80, 200]
    fig, axes = plots.new_figure(2, 3, size=(3.0, 2.6))
    moons_losses, epoch = [], 0
    bar = tqdm(total=snapshots[-1], desc="moons")
    for ax, target in zip(axes.flat, snapshots):
        if target > epoch:
            moons_losses += train_mlp(params_moons, X_moons, Y_moons, 0.5, target - epoch, 20, generator=gen)
            bar.update(target - epoch)
            bar.set_postfix(loss=f"{moons_losses[-1]:.3f}")
            epoch = target
        plots.decision_boundary(ax, lambda grid: forward(params_moons, grid)["yhat"], (-1.5, 2.5), (-1.0, 1.5),
                                resolution=90)
        plots.scatter_2d(ax, X_moons, labels_moons, s=8)
        acc = accuracy(forward(params_moons, X_moons)["yhat"], Y_moons)
        ax.set_title(f"epoch {epoch}: accuracy {acc:.2f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    bar.close()
    print(f"moons: final training loss {moons_losses[-1]:.4f}, accuracy {acc:.3f}")
    display(bt.show(fig))

# %% [markdown]
# ### The ten digits
#
# The 8x8 digits (1,797 images, 64 pixels each) with 32 tanh units and ten softmax outputs, trained with
# your functions: a quarter of the images is kept aside to measure the test accuracy.

# %%
with needs("init_params", "forward", "backward", "sgd_step", "train_mlp", "accuracy"):
    gen = torch.Generator().manual_seed(0)
    x_all, y_all = data.load_digits()
    x_train, y_train, x_test, y_test = data.train_test_split(x_all, y_all, 0.25, generator=gen)
    Y_train, Y_test = data.one_hot(y_train, 10), data.one_hot(y_test, 10)
    params_digits = init_params(64, 32, 10, generator=gen)
    digit_losses, test_accuracies = [], []
    for epoch in (bar := tqdm(range(30), desc="digits")):
        digit_losses += train_mlp(params_digits, x_train, Y_train, 0.3, 1, 32, generator=gen)
        test_accuracies.append(accuracy(forward(params_digits, x_test)["yhat"], Y_test))
        bar.set_postfix(loss=f"{digit_losses[-1]:.3f}", test_acc=f"{test_accuracies[-1]:.3f}")
    train_acc = accuracy(forward(params_digits, x_train)["yhat"], Y_train)
    print(f"digits: {len(x_train)} training images, {len(x_test)} test images")
    print(f"after 30 epochs: training loss {digit_losses[-1]:.4f}, training accuracy {train_acc:.4f}, "
          f"test accuracy {test_accuracies[-1]:.4f}")
    fig, axes = plots.new_figure(1, 3, size=(3.6, 3.0))
    ax_loss, ax_acc, ax_wrong = axes[0]
    plots.loss_curves(ax_loss, {"training loss": digit_losses}, xlabel="epoch")
    ax_acc.plot(range(1, 31), test_accuracies, marker=".")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy")
    ax_acc.grid(alpha=0.3)
    predicted = forward(params_digits, x_test)["yhat"].argmax(1)
    wrong = (predicted != y_test).nonzero().reshape(-1)[:6]
    plots.digit_grid(ax_wrong, x_test[wrong], nrow=max(1, len(wrong)))
    ax_wrong.set_title("misclassified test images\npredicted: " + " ".join(str(int(v)) for v in predicted[wrong])
                       + "\ntrue:      " + " ".join(str(int(v)) for v in y_test[wrong]), fontsize=8, family="monospace")
    display(bt.show(fig))


# %% [markdown]
# ## 5. Any number of layers, and what backpropagation saves
#
# The EPFL recitation's general scheme, for $k$ layers with $A_0$ the input and the activation on every layer:
#
# **Forward.** For $l = 1, \dots, k$: $\;U_l = A_{l-1} W_l^\top + b_l$, $\;A_l = \tanh(U_l)$.
# Keep what the backward pass needs.
#
# **Backward.** Given $\partial L / \partial A_k$, for $l = k, \dots, 1$:
#
# $$\frac{\partial L}{\partial U_l} = \frac{\partial L}{\partial A_l} \odot \tanh'(U_l)
#   = \frac{\partial L}{\partial A_l} \odot (1 - A_l^2),\qquad
# \frac{\partial L}{\partial W_l} = \Big(\frac{\partial L}{\partial U_l}\Big)^{\!\top} A_{l-1},\qquad
# \frac{\partial L}{\partial b_l} = \text{sum over the batch of } \frac{\partial L}{\partial U_l},\qquad
# \frac{\partial L}{\partial A_{l-1}} = \frac{\partial L}{\partial U_l}\, W_l .$$
#
# (Rows are examples here, which is why the products look transposed compared with the recitation's
# column vectors.) The upstream gradient $\partial L / \partial A_k$ already carries whatever averaging
# the loss does, so nothing is divided by $B$ in this scheme.
#
# **Cost.** With $k$ layers of width $m$, each step of either pass is a few $m \times m$ products:
#
# | method | cost of the gradient |
# | --- | --- |
# | naive derivative (each layer's chain from scratch) | $O(k^2 m^2)$ |
# | backpropagation | $O(k m^2)$ |
#
# and the backward pass costs the same order as the forward pass.
#
# **Exercise 11.** `deep_forward(weights, biases, A0)`: `weights[l]` has shape $(m_l, m_{l-1})$ and
# `biases[l]` $(m_l,)$. Return a cache of your choice (a dict, a list...) holding what your
# `deep_backward` needs, including the last activation $A_k$.

# %% deletable=false nbgrader={"grade": false, "grade_id": "deep_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def deep_forward(weights, biases, A0):
    """A_l = tanh(A_{l-1} W_l^T + b_l) for l = 1..k; returns a cache (here {'A': [A_0, ..., A_k]})."""
    ### BEGIN SOLUTION
    activations = [A0]
    for W, b in zip(weights, biases):
        U = activations[-1] @ W.T + b  # (B, m_l)
        activations.append(torch.tanh(U))
    return {"A": activations}
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_deep_forward", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# deep_forward: runs without autograd and its cache holds the last activation A_k = tanh(U_k) (or U_k itself),
# for 3 layers of random widths, float64.
weights, biases, A0, G = bt.random_deep_case(3, batch=4, widths=[3, 5, 2, 4], seed=51)
Ak, _, _ = bt.deep_reference(weights, biases, A0, G)
Uk = torch.atanh(Ak)
cache = bt.call_backward(deep_forward, weights, biases, A0, name="deep_forward")
# each layer rounds sums as large as bt.layer_magnitude, one layer after the other (steps); U_k is read back
# through atanh, which enlarges the error of A_k by 1 / (1 - A_k^2)
rule = {"magnitude": bt.layer_magnitude(weights, biases, A0), "steps": len(weights)}
u_rule = {**rule, "magnitude": rule["magnitude"] / max(float(1 - Ak.abs().max() ** 2), torch.finfo(Ak.dtype).tiny)}
found = [t for t in bt.tensors_in(cache) if t.shape == Ak.shape and t.dtype == Ak.dtype
         and (checks.close(t, Ak, **rule) or checks.close(t, Uk, **u_rule))]
if not found:
    raise AssertionError("the cache returned by deep_forward holds no tensor equal to the last activation A_k "
                         "(shape (B, m_k)) or to U_k: check U_l = A_{l-1} W_l^T + b_l and A_l = tanh(U_l), and keep "
                         "the values in the cache (diagnosis: values)")
### BEGIN HIDDEN TESTS
for depth, B, dtype, seed in [(1, 1, torch.float64, 52), (5, 3, torch.float64, 53), (6, 2, torch.float32, 54)]:
    weights, biases, A0, G = bt.random_deep_case(depth, batch=B, dtype=dtype, seed=seed)
    Ak, _, _ = bt.deep_reference(weights, biases, A0, G)
    cache = bt.call_backward(deep_forward, weights, biases, A0, name="deep_forward")
    rule = {"magnitude": bt.layer_magnitude(weights, biases, A0), "steps": depth}
    if not any(t.shape == Ak.shape and (checks.close(t, Ak, dtype, **rule)
                                        or checks.close(torch.tanh(t.double()), Ak, dtype, **rule))
               for t in bt.tensors_in(cache)):
        raise AssertionError(f"deep_forward with {depth} layers, B={B}, {dtype}: no A_k in the cache (diagnosis: values)")
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 12.** `deep_backward(weights, biases, cache, dL_dAk)`: the backward scheme above. Return
# `(dweights, dbiases)`, two lists shaped like `weights` and `biases`. No autograd.

# %% deletable=false nbgrader={"grade": false, "grade_id": "deep_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def deep_backward(weights, biases, cache, dL_dAk):
    """For l = k..1: dU = dA * (1 - A_l^2); dW_l = dU^T A_{l-1}; db_l = sum_b dU; dA = dU W_l."""
    ### BEGIN SOLUTION
    A = cache["A"]
    dweights = [None] * len(weights)
    dbiases = [None] * len(weights)
    dA = dL_dAk  # (B, m_k)
    for l in reversed(range(len(weights))):
        dU = dA * (1 - A[l + 1] ** 2)  # (B, m_l)
        dweights[l] = dU.T @ A[l]  # (m_l, m_{l-1})
        dbiases[l] = dU.sum(dim=0)  # (m_l,)
        dA = dU @ weights[l]  # (B, m_{l-1})
    return dweights, dbiases
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_deep_backward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# deep_backward: every layer's weight and bias gradient against torch.autograd, for an upstream gradient G on
# A_k (3 layers of random widths, float64), run under torch.no_grad(). It uses the cache of your deep_forward.
def _check_deep(depth, B, widths, dtype, seed):
    weights, biases, A0, G = bt.random_deep_case(depth, batch=B, widths=widths, dtype=dtype, seed=seed)
    _, dW_ref, db_ref = bt.deep_reference(weights, biases, A0, G)
    cache = bt.call_backward(deep_forward, weights, biases, A0, name="deep_forward")
    result = bt.call_backward(deep_backward, weights, biases, cache, G, name="deep_backward")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise AssertionError("deep_backward must return a pair (dweights, dbiases) (diagnosis: wrong_shape)")
    dW, db = result
    if len(dW) != depth or len(db) != depth:
        raise AssertionError(f"deep_backward must return one gradient per layer ({depth}), got {len(dW)} weight "
                             f"and {len(db)} bias gradients (diagnosis: wrong_shape)")
    for l in range(depth):
        checks.assert_close(dW[l], dW_ref[l], name=f"dweights[{l}] ({depth} layers, B={B}, {dtype})", dtype=dtype,
                            batch_size=B)
        checks.assert_close(db[l], db_ref[l], name=f"dbiases[{l}] ({depth} layers, B={B}, {dtype})", dtype=dtype,
                            batch_size=B)

_check_deep(3, 4, [3, 5, 2, 4], torch.float64, 61)
### BEGIN HIDDEN TESTS
for depth in range(1, 7):
    for B in (1, 5):
        _check_deep(depth, B, None, torch.float64, 100 + 10 * depth + B)
_check_deep(4, 3, None, torch.float32, 99)
### END HIDDEN TESTS

# %% [markdown]
# ### Measuring it: naive differentiation against backpropagation
#
# The naive method treats the gradient of each layer as a separate chain-rule problem: for layer $l$ it
# runs the forward pass again and multiplies the chain $\partial A_k / \partial A_{k-1} \cdots \partial A_l / \partial U_l$
# from the output down to that layer, sharing nothing with the other layers
# (`bt.naive_layerwise_gradients`; autograd does the products). Backpropagation runs the chain once and
# hands each $\partial L / \partial A_{l}$ down to the next layer. Below, both are timed on square networks
# ($k$ layers of width $m$, a batch of 32) as the depth and then the width grow; the dashed lines are the
# recitation's $O(k^2 m^2)$ and $O(k m^2)$, each scaled to match its measurement on the largest sizes.

# %%
methods = {"naive (one chain per layer)": bt.naive_layerwise_gradients,
           "autograd (one reverse pass)": bt.autograd_gradients}
with needs("deep_forward", "deep_backward"):
    W1, b1, A1, G1 = bt.random_deep_case(1)
    deep_backward(W1, b1, deep_forward(W1, b1, A1), G1)  # NotImplementedError until both are written
    methods["your deep_backward"] = lambda W, b, A0, G: deep_backward(W, b, deep_forward(W, b, A0), G)
depth_rows = bt.complexity_sweep(methods, [1, 2, 4, 8, 16, 32], [64] * 6, batch=32, progress=tqdm)
width_rows = bt.complexity_sweep(methods, [8] * 5, [32, 64, 128, 256, 512], batch=32, progress=tqdm)
naive, fast = list(methods)[0], list(methods)[-1]
for title, rows in (("depth sweep (m = 64)", depth_rows), ("width sweep (k = 8)", width_rows)):
    print(f"{title}: time in ms of " + ", ".join(methods) + "; naive / backprop")
    for row in rows:
        times = "  ".join(f"{1e3 * row[name]:9.3f}" for name in methods)
        print(f"k = {row['k']:2d}, m = {row['m']:3d}:  {times}   ratio {row[naive] / row[fast]:5.1f}")
fig, axes = plots.new_figure(1, 2, size=(5.0, 3.8))
ax_k, ax_m = axes[0]
references = {"O(k^2 m^2)": (naive, lambda k, m: k * k * m * m), "O(k m^2)": (fast, lambda k, m: k * m * m)}
bt.plot_complexity(ax_k, depth_rows, list(methods), "k", references)
bt.plot_complexity(ax_m, width_rows, list(methods), "m", references)
ax_k.set_title("growing depth, width m = 64", fontsize=9)
ax_m.set_title("growing width, depth k = 8", fontsize=9)
bt.show(fig)

# %% [markdown]
# Against depth, the naive curve follows $k^2$ and backpropagation follows $k$: the ratio between them
# grows about like $k/2$, the number of times the naive method recomputes each $\partial L / \partial A_j$
# on average. Against width both follow $m^2$ (each step is a product by an $m \times m$ matrix), so the
# ratio stays put. At the smallest sizes the fixed cost of each Python call dominates and the curves flatten.

# %% [markdown]
# **Exercise 13 (written).** Explain in a few sentences, for $k$ layers of width $m$, why naive
# differentiation costs $O(k^2 m^2)$ and backpropagation $O(k m^2)$ for one example. Say which quantity
# backpropagation computes once and reuses, and what it must keep in memory from the forward pass to do so.

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_backprop_cost", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Model answer (for the grader). Each layer step, forward or backward, is a product of an $m \times m$
# matrix with a vector of size $m$: $O(m^2)$. The naive method treats the gradient of each layer $l$ as
# its own chain-rule problem: it multiplies the chain $\partial L/\partial A_k \cdot \partial A_k/\partial A_{k-1}
# \cdots$ from the output down to layer $l$, which is $k - l + 1$ steps of $O(m^2)$. Summed over the $k$
# layers that is $\sum_l (k - l + 1) = O(k^2)$ steps, hence $O(k^2 m^2)$: the products
# $\partial L/\partial A_j$ for the upper layers are recomputed once for every layer below them.
# Backpropagation is the bottom-up (tabulated) dynamic programme: it computes each
# $\partial L/\partial A_{l}$ (equivalently each delta $\partial L/\partial U_l$) exactly once, from
# $\partial L/\partial A_{l+1}$, and reuses it both for the layer's own parameter gradients
# ($\partial L/\partial W_l = (\partial L/\partial U_l)^\top A_{l-1}$) and for the next step down. That is
# $k$ steps of $O(m^2)$, $O(k m^2)$, the same order as the forward pass. The price is memory: the
# activations $A_0, \dots, A_k$ (or the pre-activations) of the forward pass must be stored, $O(k m)$ per
# example, because the backward steps need $\tanh'(U_l) = 1 - A_l^2$ and $A_{l-1}$.
# ### END SOLUTION

# %% [markdown]
# ## 6. Gradient flow and initialisation
#
# The backward scheme of section 5 hands the gradient down one layer at a time,
#
# $$\frac{\partial L}{\partial U_l} = \frac{\partial L}{\partial A_l} \odot (1 - A_l^2), \qquad
# \frac{\partial L}{\partial A_{l-1}} = \frac{\partial L}{\partial U_l}\, W_l ,$$
#
# so the gradient that reaches layer $l$ is a product of $k - l$ matrices $W_j$ and masks $1 - A_j^2$. A
# product of many factors is rarely of size 1: twenty factors of 0.8 make $0.8^{20} \approx 0.01$, twenty
# factors of 2 make about $10^6$. Whether the layers near the input learn at all depends on these
# factors, and at the start of training they are set by the scale of the initial weights. This section
# measures them.
#
# **Exercise 14.** `layer_grad_norms(dweights)`: given the weight gradients of the layers (a list or a
# tuple of tensors, first layer first), return the list of their Frobenius norms
# $\|G\|_F = \sqrt{\sum_{i,j} G_{ij}^2}$, as Python floats, in the same order. Float32 and float64.

# %% deletable=false nbgrader={"grade": false, "grade_id": "layer_grad_norms", "locked": false, "schema_version": 3, "solution": true, "task": false}
def layer_grad_norms(dweights):
    """[ ||dW_1||_F, ..., ||dW_k||_F ], Python floats, first layer first."""
    ### BEGIN SOLUTION
    return [g.detach().norm().item() for g in dweights]
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_layer_grad_norms", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# layer_grad_norms: a list of Python floats, the Frobenius norm of each tensor in order (first layer first),
# for a list and a tuple, float64 and float32, inputs left unchanged.
def _frobenius(t):
    return math.sqrt(sum(v * v for v in t.detach().double().reshape(-1).tolist()))

def _check_norms(dweights, label):
    before = [t.clone() for t in dweights]
    want = [_frobenius(t) for t in dweights]
    got = checks.call(layer_grad_norms, dweights)
    if not all(torch.equal(a, b) for a, b in zip(before, dweights)):
        raise AssertionError(f"layer_grad_norms({label}) modified its input (diagnosis: modifies_input)")
    if not isinstance(got, list):
        raise AssertionError(f"layer_grad_norms({label}) must return a list, got {type(got).__name__} "
                             "(diagnosis: wrong_return)")
    if len(got) != len(want):
        raise AssertionError(f"layer_grad_norms({label}) must return one norm per layer ({len(want)}), got {len(got)} "
                             "(diagnosis: wrong_shape)")
    if not all(type(v) is float for v in got):
        kinds = sorted({type(v).__name__ for v in got})
        raise AssertionError(f"layer_grad_norms({label}) must return Python floats (use .item() or float()), got "
                             f"{', '.join(kinds)} (diagnosis: wrong_dtype)")
    dtype = dweights[0].dtype  # the norm is taken in the gradients' dtype before .item()
    close = lambda a, b: checks.close(a, b, dtype)  # noqa: E731
    if not all(close(a, b) for a, b in zip(got, want)):
        if len(want) > 1 and all(close(a, b) for a, b in zip(got, want[::-1])):
            raise AssertionError(f"layer_grad_norms({label}) returned the norms last layer first; the list must "
                                 "start with the first layer (diagnosis: reversed_order)")
        if all(close(a, b * b) for a, b in zip(got, want)):
            raise AssertionError(f"layer_grad_norms({label}) returned the squared norms (sum of squares); take the "
                                 "square root (diagnosis: squared_norm)")
        first = next(i for i, (a, b) in enumerate(zip(got, want)) if not close(a, b))
        raise AssertionError(f"layer_grad_norms({label})[{first}] is {got[first]!r}, expected the Frobenius norm "
                             f"{want[first]!r}: the square root of the sum of the squares of all the entries "
                             "(diagnosis: values)")

_g = torch.Generator().manual_seed(71)
_dW = [torch.randn(4, 3, generator=_g, dtype=torch.float64) * s for s in (1e-3, 1.0, 30.0)]
_check_norms(_dW, "a list of three float64 (4, 3) gradients of very different sizes")
_check_norms(tuple(t.float() for t in _dW), "a tuple of float32 gradients")
### BEGIN HIDDEN TESTS
for _depth, _dtype in [(1, torch.float64), (20, torch.float64), (7, torch.float32)]:
    _widths = [int(w) for w in torch.randint(1, 9, (_depth + 1,), generator=_g)]
    _dW = [torch.randn(_widths[i + 1], _widths[i], generator=_g, dtype=torch.float64) * 10.0 ** (i % 5 - 2)
           for i in range(_depth)]
    _check_norms([t.to(_dtype) for t in _dW], f"{_depth} layers of random shapes, {_dtype}")
_check_norms([torch.ones(1, 1, dtype=torch.float64) * -3.0], "one (1, 1) gradient")
### END HIDDEN TESTS

# %% [markdown]
# ### The variance argument, and Xavier's initialisation
#
# Take one unit of a layer, $u_i = \sum_{j=1}^{n_{in}} W_{ij}\, a_j$, with weights drawn independently of
# mean 0 and variance $\sigma^2$, independent of the inputs $a_j$ (mean 0, variance $v$). The $n_{in}$ terms
# are independent with variance $\sigma^2 v$ each, so
#
# $$\operatorname{Var}(u_i) = n_{in}\, \sigma^2\, v .$$
#
# Near 0, $\tanh(u) \approx u$, so every layer multiplies the variance of the signal by $n_{in}\sigma^2$,
# and $k$ layers by $(n_{in}\sigma^2)^k$. It stays put only when
#
# $$n_{in}\,\sigma^2 = 1 .$$
#
# The backward pass multiplies by $W_l$ from the other side, a sum over the $n_{out}$ units fed by a unit,
# and the same argument asks for $n_{out}\sigma^2 = 1$. Glorot and Bengio (2010) take the compromise
# $\sigma^2 = 2/(n_{in} + n_{out})$, and draw uniformly: a uniform law on $[-a, a]$ has variance $a^2/3$,
# hence their bound $a = \sqrt{6/(n_{in} + n_{out})}$.
#
# With 64 units per layer, Lecture 9's `0.3 * randn` gives $n_{in}\sigma^2 = 64 \times 0.09 \approx 5.8$ per
# layer and `0.1 * randn` gives $0.64$ (a factor $0.8$ on the standard deviation).
#
# **Exercise 15.** `xavier_init(fan_in, fan_out, generator=None)`: a float32 tensor of shape
# $(n_{out}, n_{in})$, the shape of a layer's `W` in `deep_forward`, drawn uniformly from $[-a, a]$ with
# $a = \sqrt{6/(n_{in} + n_{out})}$. Use only `generator` for the randomness (pass it to `torch.rand` or to
# `Tensor.uniform_`), so that a seeded generator gives the same weights every time.

# %% deletable=false nbgrader={"grade": false, "grade_id": "xavier_init", "locked": false, "schema_version": 3, "solution": true, "task": false}
def xavier_init(fan_in, fan_out, generator=None):
    """Uniform on [-a, a], a = sqrt(6 / (fan_in + fan_out)), shape (fan_out, fan_in), float32."""
    ### BEGIN SOLUTION
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    unit = torch.rand(fan_out, fan_in, generator=generator)  # uniform on [0, 1)
    return (2.0 * unit - 1.0) * bound
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_xavier_init_shape", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# xavier_init, shape and randomness: a float32 tensor of shape (fan_out, fan_in); the same seed gives the same
# weights, another seed others, and torch's global random generator is left alone.
def _xavier_call(fan_in, fan_out, seed):
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    w = checks.call(xavier_init, fan_in, fan_out, generator=gen)
    if not isinstance(w, torch.Tensor):
        raise AssertionError(f"xavier_init must return a tensor, got {type(w).__name__} (diagnosis: not_a_tensor)")
    if tuple(w.shape) != (fan_out, fan_in):
        tag = "transposed_shape" if tuple(w.shape) == (fan_in, fan_out) else "wrong_shape"
        raise AssertionError(f"xavier_init(fan_in={fan_in}, fan_out={fan_out}) has shape {tuple(w.shape)}; a layer "
                             f"with {fan_in} inputs and {fan_out} outputs has W of shape (fan_out, fan_in) = "
                             f"{(fan_out, fan_in)}, as in U = A W^T + b (diagnosis: {tag})")
    if w.dtype != torch.float32:
        raise AssertionError(f"xavier_init must return float32, got {w.dtype} (diagnosis: wrong_dtype)")
    return w

_w = _xavier_call(30, 50, 0)
# whether the global generator moved is watched where xavier_init runs (the student's process when graded)
from backproplab.capstone_checks import call_watching_rng  # noqa: E402

_again, _drew = call_watching_rng(xavier_init, 30, 50, generator=torch.Generator().manual_seed(0), name="xavier_init")
if _drew:
    raise AssertionError("xavier_init drew from torch's global random generator although it was given one: pass "
                         "generator=generator to torch.rand (or uniform_) (diagnosis: ignores_generator)")
if not torch.equal(_w, _again) or torch.equal(_w, _xavier_call(30, 50, 1)):
    raise AssertionError("xavier_init must draw with the generator it is given: the same seed must give the same "
                         "weights, another seed other weights (diagnosis: ignores_generator)")
### BEGIN HIDDEN TESTS
for _fi, _fo in [(1, 1), (784, 10), (3, 500), (64, 64)]:
    _xavier_call(_fi, _fo, 5)
_ = _xavier_call(7, 2, None)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_xavier_init_distribution", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# xavier_init, distribution: every weight in [-a, a] with a = sqrt(6 / (fan_in + fan_out)), and, over many
# weights (fixed seeds), the mean 0, the variance a^2 / 3 and the spread of a uniform law, within several
# standard errors.
def _xavier_law(fan_in, fan_out, seed):
    w = checks.call(xavier_init, fan_in, fan_out, generator=torch.Generator().manual_seed(seed))
    if not isinstance(w, torch.Tensor) or w.numel() != fan_in * fan_out:
        raise AssertionError(f"xavier_init({fan_in}, {fan_out}) must return a tensor of {fan_in * fan_out} weights "
                             "(diagnosis: wrong_shape)")
    if tuple(w.shape) != (fan_out, fan_in):
        raise AssertionError(f"xavier_init({fan_in}, {fan_out}) has shape {tuple(w.shape)}, expected (fan_out, fan_in) "
                             f"= {(fan_out, fan_in)} (diagnosis: transposed_shape)")
    x = w.detach().double().reshape(-1)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    n = x.numel()
    mean, var = float(x.mean()), float((x * x).mean())
    kurtosis = float((x ** 4).mean()) / var ** 2 if var > 0 else float("nan")
    top = float(x.abs().max())
    label = f"xavier_init(fan_in={fan_in}, fan_out={fan_out})"
    if top > a * (1 + 1e-6) and kurtosis > 2.4:
        raise AssertionError(f"{label}: weights up to {top:.4f} beyond the bound a = {a:.4f}, and the bell shape of a "
                             "normal law (heavy tails): draw uniformly on [-a, a] (torch.rand, uniform_), not with "
                             "randn (diagnosis: normal_not_uniform)")
    if top > a * (1 + 1e-6) or top < 0.98 * a:
        raise AssertionError(f"{label}: the largest |weight| is {top:.4f}, but the weights must fill [-a, a] with "
                             f"a = sqrt(6 / (fan_in + fan_out)) = {a:.4f} (diagnosis: wrong_bound)")
    if abs(mean) > 6 * a / math.sqrt(3 * n):
        raise AssertionError(f"{label}: the weights have mean {mean:.4f}; a law symmetric around 0 has mean 0 within "
                             f"{6 * a / math.sqrt(3 * n):.4f} for {n} weights (diagnosis: values)")
    if abs(var - a * a / 3) > 6 * a * a * math.sqrt(4 / 45 / n):
        raise AssertionError(f"{label}: the weights have variance {var:.5f}, expected a^2 / 3 = {a * a / 3:.5f} "
                             "for the uniform law on [-a, a] (diagnosis: values)")
    inner = float((x.abs() < a / 2).double().mean())
    if abs(inner - 0.5) > 6 * math.sqrt(0.25 / n) or abs(kurtosis - 1.8) > 0.15:
        raise AssertionError(f"{label}: {100 * inner:.1f}% of the weights lie in [-a/2, a/2], expected 50% for a "
                             "uniform law (diagnosis: normal_not_uniform)")

_xavier_law(200, 300, 0)
### BEGIN HIDDEN TESTS
for _fi, _fo, _seed in [(300, 200, 1), (784, 10, 2), (2, 4000, 3), (100, 100, 4)]:
    _xavier_law(_fi, _fo, _seed)
for _seed in range(20):
    _w = checks.call(xavier_init, 1, 1, generator=torch.Generator().manual_seed(_seed))
    if float(_w.abs().max()) > math.sqrt(3.0) * (1 + 1e-6):
        raise AssertionError("xavier_init(1, 1) gave a weight beyond a = sqrt(3) (diagnosis: wrong_bound)")
### END HIDDEN TESTS

# %% [markdown]
# ### Predict, then check
#
# The experiment below builds a 20-layer tanh network of width 64 with zero biases, feeds it a batch of
# 32 random inputs, and runs your `deep_backward` from a random upstream gradient $\partial L/\partial A_{20}$
# (the same for every initialisation). Before you run it, think about the weights `0.1 * randn`: each layer
# multiplies the forward signal by about $\sqrt{64} \times 0.1 = 0.8$, and the backward scheme multiplies
# $\partial L/\partial U$ by about the same factor per layer. Think about both factors of
# $\partial L/\partial W_l = (\partial L/\partial U_l)^\top A_{l-1}$.
#
# **Exercise 16 (prediction).** With weights `0.1 * randn`, compare the norm of the weight gradient of
# the **first** layer with that of the **last** (20th) layer. Set `predicted_gradient_profile` to one of
#
# * `"first layer largest"`: the first layer's is more than 10 times the last layer's;
# * `"last layer largest"`: the last layer's is more than 10 times the first layer's;
# * `"about equal"`: they are within a factor 10 of each other.
#
# Replace the `raise NotImplementedError()` line with `predicted_gradient_profile = "..."` (keep it inside
# the `with` block).

# %% deletable=false nbgrader={"grade": false, "grade_id": "predicted_gradient_profile", "locked": false, "schema_version": 3, "solution": true, "task": false}
# One of "first layer largest", "last layer largest", "about equal".
with needs("predicted_gradient_profile"):
    ### BEGIN SOLUTION
    predicted_gradient_profile = "about equal"
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_predicted_gradient_profile", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# predicted_gradient_profile: your prediction against the experiment, run here with torch.autograd: 20 tanh
# layers of width 64, weights 0.1 * randn (seed 0), zero biases, 32 inputs; first layer's weight-gradient
# norm divided by the last layer's.
_choices = ("first layer largest", "last layer largest", "about equal")
_guess = globals().get("predicted_gradient_profile")
if _guess is None:
    raise AssertionError("predicted_gradient_profile is not set yet: assign one of the three choices "
                         "(diagnosis: not_implemented)")
if _guess not in _choices:
    raise AssertionError(f"predicted_gradient_profile is {_guess!r}; it must be one of {list(_choices)} "
                         "(diagnosis: wrong_return)")
_gen = torch.Generator().manual_seed(0)
_Ws = [(0.1 * torch.randn(64, 64, generator=_gen, dtype=torch.float64)).requires_grad_(True) for _ in range(20)]
_A = torch.randn(32, 64, generator=_gen, dtype=torch.float64)
_upstream = torch.randn(32, 64, generator=_gen, dtype=torch.float64) / 32
with torch.enable_grad():
    for _W in _Ws:
        _A = torch.tanh(_A @ _W.T)
    _grads = torch.autograd.grad((_A * _upstream).sum(), _Ws)
_ratio = float(_grads[0].norm() / _grads[-1].norm())
_truth = "first layer largest" if _ratio > 10 else "last layer largest" if _ratio < 0.1 else "about equal"
if _guess != _truth:
    raise AssertionError(f"you predicted {_guess!r}; the experiment gives {_truth!r} (first layer / last layer = "
                         f"{_ratio:.3g}). See the plot and the explanation below it (diagnosis: prediction)")

# %% [markdown]
# The experiment: per-layer gradient norms for four initialisations, with your `deep_forward`,
# `deep_backward`, `layer_grad_norms` and `xavier_init`. The left plot shows the weight gradients; the middle
# one the bias gradients, which are $\partial L/\partial U_l$ summed over the batch: the backward signal alone;
# the right one the forward signal, the standard deviation of each layer's activations, where the variance
# argument's factor $n_{in}\sigma^2$ (printed above the plots) can be seen at work.

# %%
DEPTH, WIDTH, BATCH = 20, 64, 32
SCALES = {"0.1 * randn": 0.1, "0.3 * randn": 0.3, "Xavier": None, "2.0 * randn": 2.0}
A0_flow, G_flow = gf.deep_inputs(BATCH, WIDTH)


def flow_weights(scale):
    """20 square layers, float64: scale * randn, or xavier_init when scale is None; zero biases."""
    if scale is None:
        gen = torch.Generator().manual_seed(0)
        weights = [xavier_init(WIDTH, WIDTH, generator=gen).double() for _ in range(DEPTH)]
        return weights, [torch.zeros(WIDTH, dtype=torch.float64) for _ in range(DEPTH)]
    return gf.gaussian_weights(DEPTH, WIDTH, scale)


with needs("deep_forward", "deep_backward", "layer_grad_norms", "xavier_init"):
    weight_norms, bias_norms, acts = {}, {}, {}
    for label, scale in SCALES.items():
        weights, biases = flow_weights(scale)
        dW, db = deep_backward(weights, biases, deep_forward(weights, biases, A0_flow), G_flow)
        weight_norms[label] = layer_grad_norms(dW)
        bias_norms[label] = layer_grad_norms([d.reshape(-1, 1) for d in db])
        acts[label] = gf.activations(weights, biases, A0_flow)
    tanh_weight_norms, tanh_bias_norms, tanh_activations = weight_norms, bias_norms, acts  # all four, or none
    fig, axes = plots.new_figure(1, 3, size=(3.6, 3.4))
    gf.plot_per_layer(axes[0][0], tanh_weight_norms, ylabel="norm of dL/dW_l", title="tanh: weight gradients")
    gf.plot_per_layer(axes[0][1], tanh_bias_norms, ylabel="norm of dL/db_l", title="tanh: bias gradients")
    gf.plot_per_layer(axes[0][2], {k: [float(a.std()) for a in v] for k, v in tanh_activations.items()},
                      ylabel="standard deviation of A_l", title="tanh: forward signal")
    print("n_in * sigma^2 of the first layer's weights:",
          ", ".join(f"{k}: {WIDTH * float(flow_weights(s)[0][0].var()):.2f}" for k, s in SCALES.items()))
    print("first layer / last layer, weight gradients:",
          ", ".join(f"{k}: {v[0] / v[-1]:.3g}" for k, v in tanh_weight_norms.items()))
    display(bt.show(fig))

# %%
with needs("predicted_gradient_profile", "deep_forward", "deep_backward", "layer_grad_norms", "xavier_init"):
    small = tanh_weight_norms["0.1 * randn"]
    ratio = small[0] / small[-1]
    outcome = "first layer largest" if ratio > 10 else "last layer largest" if ratio < 0.1 else "about equal"
    print(f"you predicted: {predicted_gradient_profile!r}")
    print(f"the experiment: first / last = {ratio:.3g}, that is {outcome!r}")

# %% [markdown]
# **Reading the plots.**
#
# * `0.1 * randn`: the weight gradients are flat, and all small. The gradient of layer $l$ is
#   $(\partial L/\partial U_l)^\top A_{l-1}$: the backward factor $\partial L/\partial U_l$ shrinks by about 0.8
#   per layer on its way down (the right plot), while the forward factor $A_{l-1}$ shrinks by about 0.8 per
#   layer on its way up. The two products have the same number of factors in total, $0.8^{19}$, whatever
#   the layer. So "vanishing" is not always a slope across the layers: here every layer's weight gradient
#   is small, and the bias gradients show the vanishing backward signal alone.
# * `0.3 * randn` and `2.0 * randn`: $n_{in}\sigma^2 > 1$, the linear part of each layer amplifies, and the
#   gradients grow towards the input: a hundred times at 0.3, by many orders of magnitude at 2.0. At 2.0 most
#   units are saturated (their $1 - A^2$ is almost 0, see the histograms below), but the few that are not
#   pass a gradient multiplied by weights of size 2 on 64 inputs: it explodes, and a step size that suits
#   the last layer would throw the first one far away.
# * Xavier: $n_{in}\sigma^2 = 1$. In the linear regime the signal would keep its size; tanh's slope, below 1
#   away from 0, still lets it shrink slowly (right plot: a factor of about 4 over 20 layers, against 100 at
#   0.1), and every layer gets a weight gradient of the same order, neither tiny nor huge.
# * The forward signal (right plot) tells the same story from the other side: at `0.3 * randn` and
#   `2.0 * randn` the activations' spread is stuck near its maximum, the units are pushed to $\pm 1$.

# %% [markdown]
# ### Sigmoid and ReLU
#
# The same measurement with the logistic sigmoid and with ReLU on every layer. `deep_backward` is written
# for tanh, so these gradients come from `torch.autograd` (`gf.autograd_weight_grads`); the norms are
# still yours.

# %%
with needs("layer_grad_norms", "xavier_init"):
    fig, axes = plots.new_figure(1, 2, size=(4.4, 3.4))
    for ax, activation in zip(axes[0], ("sigmoid", "relu")):
        norms = {}
        for label, scale in SCALES.items():
            weights, biases = flow_weights(scale)
            norms[label] = layer_grad_norms(gf.autograd_weight_grads(weights, biases, A0_flow, G_flow, activation))
        gf.plot_per_layer(ax, norms, ylabel="norm of dL/dW_l", title=f"{activation}: weight gradients")
        print(f"{activation}: first layer / last layer, "
              + ", ".join(f"{k}: {v[0] / v[-1]:.3g}" for k, v in norms.items()))
    display(bt.show(fig))

# %% [markdown]
# * Sigmoid: its derivative $\sigma(1 - \sigma)$ is at most $1/4$, and its outputs are all positive (around
#   $1/2$), not centred on 0. With small weights and with Xavier's, each layer divides the backward signal by
#   about 4 or more, and the first layer's gradient ends up 7 to 14 orders of magnitude below the last
#   one's: Xavier's bound, derived for a unit slope at 0, does not compensate a slope of $1/4$. Only the
#   large weights of `2.0 * randn` make up for it (and then the gradient grows towards the input). This is
#   one reason deep networks moved away from the sigmoid.
# * ReLU: its derivative is 0 or 1 and the network is piecewise linear, so, as for tanh at small scale, the
#   weight gradients are flat across the layers, but their common size is a power of the per-layer gain:
#   tiny at `0.1 * randn`, about $10^{-2}$ with Xavier, $10^{20}$ at `2.0 * randn`. Half the units are
#   switched off, so the gain that keeps the signal's size is $n_{in}\sigma^2 = 2$ (He et al., 2015), not
#   Xavier's 1: with Xavier's weights each ReLU layer loses a factor $\sqrt 2$.

# %% [markdown]
# ### Saturated units
#
# A tanh unit with $|A| > 0.99$ is *saturated*: its derivative $1 - A^2$ is below 0.02, and it passes
# almost no gradient. The histograms show every hidden value of the 20 tanh layers above, per
# initialisation.

# %%
with needs("deep_forward", "deep_backward", "layer_grad_norms", "xavier_init"):
    fig, axes = plots.new_figure(1, 4, size=(2.5, 2.4))
    for ax, (label, acts) in zip(axes[0], tanh_activations.items()):
        gf.plot_activation_histogram(ax, acts, threshold=0.99, title=label)
    display(bt.show(fig))

# %% [markdown]
# At `0.1 * randn` the values collapse to 0 layer after layer (the linear regime); with Xavier they stay
# spread over $(-1, 1)$ with few saturated units; at `2.0 * randn` almost every unit sits at $\pm 1$.
#
# ### Why not start from zero? Symmetry
#
# If every weight starts at the same value, every hidden unit computes the same function of the input,
# receives the same delta, and gets the same update: they stay identical forever, and the layer is worth a
# single unit. With all weights at zero it is worse: $h = \tanh(0) = 0$ gives $\nabla_{W_y} = 0$, and
# $W_y = 0$ gives $\delta^h = 0$: only the output bias learns. Below, Lecture 9's network with 16 hidden
# units is trained on the two moons (full batch, your `forward`, `backward` and `sgd_step`) from three
# starts, and we count how many *different* rows $W_h$ has at the end (one row per hidden unit).

# %%
with needs("init_params", "forward", "backward", "sgd_step", "cross_entropy", "accuracy"):
    gen = torch.Generator().manual_seed(0)
    X_sym, labels_sym = data.moons(200, noise=0.12, generator=gen)
    Y_sym = data.one_hot(labels_sym, 2)
    starts = {
        "zeros": {k: torch.zeros_like(v) for k, v in init_params(2, 16, 2).items()},
        "all weights 0.5": {k: torch.full_like(v, 0.5 if k.startswith("W") else 0.0)
                            for k, v in init_params(2, 16, 2).items()},
        "0.3 * randn (init_params)": init_params(2, 16, 2, generator=gen),
    }
    print(f"{'start':28s} {'distinct rows of Wh':>20s} {'loss':>8s} {'accuracy':>9s}")
    for label, params_sym in starts.items():
        for _ in range(300):
            sgd_step(params_sym, backward(params_sym, forward(params_sym, X_sym), Y_sym), 0.5)
        out = forward(params_sym, X_sym)
        print(f"{label:28s} {gf.distinct_rows(params_sym['Wh']):20d} {float(cross_entropy(out['yhat'], Y_sym)):8.4f} "
              f"{accuracy(out['yhat'], Y_sym):9.3f}")

# %% [markdown]
# **Exercise 17 (written).** Explain why a network whose weights all start at zero (or all at the same
# constant) cannot learn more than a network with a single hidden unit, using the backward formulas of
# section 3. What does a random initialisation change, and why must its scale still be chosen with care?

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_zero_init", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Model answer (for the grader). With equal weights, every hidden unit $i$ computes the same
# $\tilde h_i = \sum_j W^h_{ij} x_j + b^h_i$ and the same $h_i$ for every input. Its delta is
# $\delta^h_i = (1 - h_i^2)\sum_j \delta^y_j W^y_{j,i}$; the columns of $W_y$ are equal too, so all the
# $\delta^h_i$ are equal, and so are the rows of $\nabla_{W_h} = \frac1B (\Delta^h)^\top X$ and the entries of
# $\nabla_{b_h}$. Gradient descent then applies the same update to every hidden unit, and (by induction
# over the steps) they stay identical forever: the layer computes one feature, copied $n_h$ times. With
# all weights at zero it is worse: $h = \tanh(0) = 0$ makes $\nabla_{W_y} = (\Delta^y)^\top H / B = 0$, and
# $W_y = 0$ makes $\delta^h = 0$, so $W_h$ and $W_y$ never move and only the output bias $b_y$ learns (the
# class frequencies). Random weights break the symmetry: units start different, receive different deltas
# and learn different features. Their scale matters because each layer multiplies the signal forward and
# the gradient backward by about $n_{in}\sigma^2$ in variance: too small and the signals vanish through a
# deep network (all gradients tiny), too large and tanh saturates or the gradients explode. Xavier's
# $\sigma^2 = 2/(n_{in} + n_{out})$ keeps these factors near 1.
# ### END SOLUTION

# %% [markdown]
# ## 7. Bug hunt: a check for `backward`
#
# The grade cells of this lab are checks: they run a function on inputs they build and compare with
# `torch.autograd`. Writing one is a skill of its own, because a check is only as good as the cases it
# tries. A batch of one example cannot tell a mean from a sum; zero biases hide a forgotten bias; a square
# weight matrix hides a transposition in the shape; a batch size equal to the number of classes hides a
# division by the wrong size.
#
# **Exercise 18.** Write `check_backward(candidate)`: it returns `True` when `candidate` is a right
# `backward(params, outputs, Y)` for this lab's network (the gradients of the batch-mean cross-entropy,
# a dict with the keys and shapes of `params`), and `False` when it is wrong. Rules:
#
# * use only public facts: inputs you build yourself, the lab's `forward` and `cross_entropy`,
#   `torch.autograd`, finite differences (while the check is graded, `forward`, `softmax` and
#   `cross_entropy` are correct versions, so a slip in yours does not cost these points);
# * return a Python `bool`; a candidate that raises is wrong: catch its exception and return `False`;
# * a right candidate may be written in any way (einsum, loops over examples, autograd...), and may
#   compute in float32 what it is given in float32: compare with tolerances, not exact equality;
# * each call must take well under 2 seconds.
#
# **Grading.** The grade cell runs your check on hidden candidates, right and wrong ones. If it rejects a
# single right one, the exercise scores 0. Otherwise it scores the points in proportion to the wrong
# candidates it rejects (all 4 points only when it rejects every one). Below the grade cell, the four
# planted bugs of the notebook show what your check says.

# %% deletable=false nbgrader={"grade": false, "grade_id": "check_backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def check_backward(candidate):
    """True iff candidate(params, outputs, Y) returns the gradients of cross_entropy(forward(params, X)['yhat'], Y)."""
    ### BEGIN SOLUTION
    def make_case(nx, nh, ny, batch, seed):
        rng = torch.Generator().manual_seed(seed)
        draw = lambda *shape: torch.randn(*shape, generator=rng, dtype=torch.float64)  # noqa: E731
        case_params = {"Wh": draw(nh, nx), "bh": draw(nh, 1), "Wy": draw(ny, nh), "by": draw(ny, 1)}
        inputs = draw(batch, nx)
        targets = torch.nn.functional.one_hot(torch.randint(0, ny, (batch,), generator=rng), ny).double()
        return case_params, inputs, targets

    # several examples (mean against sum), non-zero biases, no two sizes equal (a transposition or a
    # division by the wrong size shows), and a batch of one
    for nx, nh, ny, batch, seed in [(3, 5, 2, 4, 0), (4, 3, 6, 7, 1), (2, 4, 3, 1, 2), (5, 6, 4, 9, 3)]:
        case_params, inputs, targets = make_case(nx, nh, ny, batch, seed)
        with torch.enable_grad():
            leaves = {k: v.clone().requires_grad_(True) for k, v in case_params.items()}
            loss = cross_entropy(forward(leaves, inputs)["yhat"], targets)
            expected = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
        with torch.no_grad():
            case_outputs = {k: v.detach().clone() for k, v in forward(case_params, inputs).items()}
        try:
            with torch.no_grad():
                got = candidate({k: v.clone() for k, v in case_params.items()}, case_outputs, targets.clone())
            for key, want in expected.items():
                value = got[key]
                if not isinstance(value, torch.Tensor) or value.shape != want.shape:
                    return False
                if not torch.allclose(value.detach().double(), want, rtol=1e-5, atol=1e-8):
                    return False
        except Exception:
            return False
    return True
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_check_backward", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
# check_backward: run on 6 right and 11 wrong candidate backward functions (1 right and the 4 planted bugs are
# public, the others hidden), at most 2 s per call of your check. Scored with nbgrader's partial credit: the
# number this cell shows last is its score. 0 if a right candidate is rejected (the cell fails), else 4 points
# times the share of the wrong candidates rejected (here, without the hidden ones: of the 4 planted bugs).
_hunt = bh3.BugHunt(check_backward, points=4, seconds=2.0, namespace=globals())
_hunt.right("torch.autograd on the rebuilt network", bh3.autograd_backward)
for _name, (_candidate, _tag) in bh3.planted_bugs().items():
    _hunt.wrong(_name, _candidate, _tag)
### BEGIN HIDDEN TESTS
def _lecture9(params, outputs, Y):
    bsize = Y.shape[0]
    grads = {}
    Y_tilde_grad = outputs["yhat"] - Y
    h_tilde_grad = torch.mm(Y_tilde_grad, params["Wy"])
    h_tilde_grad = h_tilde_grad * (1 - torch.pow(outputs["h"], 2))
    grads["Wy"] = torch.mm(Y_tilde_grad.T, outputs["h"])
    grads["Wh"] = torch.mm(h_tilde_grad.T, outputs["X"])
    grads["by"] = Y_tilde_grad.sum(dim=0, keepdim=True).T
    grads["bh"] = h_tilde_grad.sum(0, keepdim=True).T
    for k in grads:
        grads[k] = grads[k] / bsize
    return grads

def _einsum(params, outputs, Y):
    n = Y.shape[0]
    dy = (outputs["yhat"] - Y) / n
    dh = torch.einsum("bk,kh->bh", dy, params["Wy"]) * (1 - outputs["h"].pow(2))
    return {"Wy": torch.einsum("bk,bh->kh", dy, outputs["h"]), "by": torch.einsum("bk->k", dy)[:, None],
            "Wh": torch.einsum("bh,bx->hx", dh, outputs["X"]), "bh": torch.einsum("bh->h", dh).reshape(-1, 1)}

def _per_example(params, outputs, Y):
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for b in range(Y.shape[0]):
        dy = (outputs["yhat"][b] - Y[b])[:, None]
        h = outputs["h"][b][:, None]
        dh = (params["Wy"].T @ dy) * (1 - h * h)
        total["Wy"] += dy @ h.T
        total["by"] += dy
        total["Wh"] += dh @ outputs["X"][b][None, :]
        total["bh"] += dh
    return {k: v / Y.shape[0] for k, v in total.items()}

def _autograd_float64(params, outputs, Y):
    with torch.enable_grad():
        leaf = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
        X64 = outputs["X"].detach().double()
        logits = torch.tanh(X64 @ leaf["Wh"].T + leaf["bh"].T) @ leaf["Wy"].T + leaf["by"].T
        loss = torch.nn.functional.cross_entropy(logits, Y.detach().double().argmax(1))
        gs = torch.autograd.grad(loss, list(leaf.values()))
    return {k: g.to(params[k].dtype) for k, g in zip(leaf, gs)}

def _recompute_from_X(params, outputs, Y):
    X = outputs["X"]
    h = torch.tanh(X @ params["Wh"].T + params["bh"].T)
    p = torch.softmax(h @ params["Wy"].T + params["by"].T, dim=1)
    dy = (p - Y) / len(Y)
    dh = (1 - h * h) * (dy @ params["Wy"])
    return {"Wh": dh.T @ X, "bh": dh.sum(0, keepdim=True).T, "Wy": dy.T @ h, "by": dy.sum(0, keepdim=True).T}

for _name, _candidate in [("Lecture 9's code", _lecture9), ("einsum", _einsum), ("loop over examples", _per_example),
                          ("autograd in float64, cast back", _autograd_float64),
                          ("forward recomputed from X", _recompute_from_X)]:
    _hunt.right(_name, _candidate)

def _bias_overwritten(params, outputs, Y):
    grads = {k: torch.zeros_like(v) for k, v in params.items()}
    B = Y.shape[0]
    for b in range(B):
        dy = (outputs["yhat"][b] - Y[b])[:, None]
        h = outputs["h"][b][:, None]
        dh = (params["Wy"].T @ dy) * (1 - h * h)
        grads["Wy"] += dy @ h.T / B
        grads["Wh"] += dh @ outputs["X"][b][None, :] / B
        grads["by"] = dy / B
        grads["bh"] = dh / B
    return grads

def _template(dy_fn=None, deriv_fn=None, divisor_fn=None, h_fn=None, zero_wy=False):
    def candidate(params, outputs, Y):
        B = divisor_fn(Y) if divisor_fn else Y.shape[0]
        h = h_fn(params, outputs) if h_fn else outputs["h"]
        dy = dy_fn(outputs, Y) if dy_fn else outputs["yhat"] - Y
        deriv = deriv_fn(outputs) if deriv_fn else 1 - h ** 2
        dh = (dy @ params["Wy"]) * deriv
        gwy = torch.zeros_like(params["Wy"]) if zero_wy else dy.T @ h / B
        return {"Wy": gwy, "by": dy.sum(0, keepdim=True).T / B,
                "Wh": dh.T @ outputs["X"] / B, "bh": dh.sum(0, keepdim=True).T / B}
    return candidate

for _name, _candidate, _tag in [
    ("bias gradient overwritten in a loop over examples (right only for a batch of one)", _bias_overwritten,
     "bias_not_summed"),
    ("softmax derivative slip: only the diagonal of the Jacobian", _template(dy_fn=lambda o, Y: -Y * (1 - o["yhat"])),
     "values"),
    ("batch mean taken twice", _template(divisor_fn=lambda Y: Y.shape[0] ** 2), "batch_mean_twice"),
    ("tanh derivative taken at htilde", _template(deriv_fn=lambda o: 1 - o["htilde"] ** 2), "values"),
    ("hidden values recomputed without the bias", _template(h_fn=lambda p, o: torch.tanh(o["X"] @ p["Wh"].T)), "values"),
    ("divided by the number of classes instead of the batch size", _template(divisor_fn=lambda Y: Y.shape[1]),
     "scaled"),
    ("grads['Wy'] left at zero", _template(zero_wy=True), "zero"),
]:
    _hunt.wrong(_name, _candidate, _tag)
### END HIDDEN TESTS
_hunt.score()

# %% [markdown]
# What your check says about the right implementation built with autograd and the four planted bugs
# (each built from `torch.autograd`, with its diagnosis from the course's catalogue):

# %%
with needs("check_backward"):
    demo = bh3.BugHunt(check_backward, points=0, namespace=globals())
    demo.right("torch.autograd on the rebuilt network", bh3.autograd_backward)
    for name, (candidate, tag) in bh3.planted_bugs().items():
        demo.wrong(f"{name} ({tag})", candidate, tag)
    print(bh3.verdict_table(demo.run(stop_early=False)))

# %% [markdown]
# ## What to take away
#
# * The chain rule says *what* the derivative is; backpropagation is the order of computation that makes it
#   cheap: bottom-up dynamic programming over the graph, each $\partial L / \partial(\text{node})$ computed once.
# * Two deltas carry the whole one-hidden-layer network: $\delta^y = \hat y - y$ and
#   $\delta^h = (1 - h^2) \odot (\delta^y W_y)$; every weight gradient is a delta times the layer's input.
# * With a batch, gradients are averaged like the loss; biases sum their deltas over the batch.
# * The same scheme handles $k$ layers in $O(k m^2)$, the cost of a forward pass, instead of $O(k^2 m^2)$.
# * The gradient of a deep network is a product of one factor per layer: the scale of the initial weights
#   decides whether it vanishes, explodes or keeps its size. Xavier's $\sigma^2 = 2/(n_{in} + n_{out})$
#   keeps $n_{in}\sigma^2$ near 1 for tanh; equal initial weights never break the symmetry between units.
# * A check is only as good as its cases: several examples, non-zero biases, sizes that differ, and a
#   tolerance rather than exact equality.

# %% [markdown]
# ## Sources and further reading
#
# * **Lecture 9**: "Lecture 9: Backpropagation", Rémy Sun, *Optimization for data sciences*, Université
#   Côte d'Azur. The chain rule and why it is not enough, dynamic programming (Bellman; Fibonacci with a
#   memo and with a table), the tanh network with its deltas, and the lab code (`backward`, the `0.3 * randn`
#   initialisation, the update under `torch.no_grad()`) this lab follows.
# * **EPFL recitation**: "Backpropagation, Automatic Differentiation & PyTorch", recitation of *Mathematics of
#   Data*, Prof. Volkan Cevher, EPFL. The forward and backward schemes of a $k$-layer network, the naive
#   gradient of a two-layer network, and the costs $O(k^2 m^2)$ against $O(k m^2)$.
# * "Applied Deep Learning — Training Neural Networks" (the course's seed on gradient descent and the
#   chain rule): the delta rule $\partial E/\partial w_{ij} = \delta_j o_i$ and backward-mode automatic
#   differentiation, the idea of section 3.
# * D. E. Rumelhart, G. E. Hinton and R. J. Williams, "Learning representations by back-propagating
#   errors", *Nature* 323, 533–536 (1986): backpropagation for multi-layer networks, and the remark that
#   equal initial weights cannot break the symmetry between hidden units.
# * X. Glorot and Y. Bengio, "Understanding the difficulty of training deep feedforward neural networks",
#   AISTATS 2010: the variance argument, saturation of sigmoid and tanh units, and the initialisation of
#   `xavier_init`.
# * K. He, X. Zhang, S. Ren and J. Sun, "Delving deep into rectifiers", ICCV 2015: the factor 2 for ReLU.
# * S. Linnainmaa (1970), reverse-mode automatic differentiation, cited by Lecture 9 as the origin of modern
#   backpropagation.
