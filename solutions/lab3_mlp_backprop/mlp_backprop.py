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
# 2. the one-hidden-layer tanh network of the lecture: `init_params`, a numerically stable `softmax`,
#    `cross_entropy`, `forward`, and the hand-written `backward` with its two deltas;
# 3. training: `sgd_step`, `accuracy`, `train_mlp`, used on a 2-D toy problem and on the ten digits;
# 4. the general scheme for `k` layers, `deep_forward` and `deep_backward`, and a measurement of what
#    it saves against naive differentiation: $O(k m^2)$ instead of $O(k^2 m^2)$.
#
# The lecture's notation is kept: parameters in a dict with `Wh` $(n_h, n_x)$, `bh` $(n_h, 1)$,
# `Wy` $(n_y, n_h)$, `by` $(n_y, 1)$; a batch `X` has one example per row, shape $(B, n_x)$, and the
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
from backproplab import checks, data, env, needs, plots
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
# For one example $x \in \mathbb{R}^{n_x}$ the lecture's network computes
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
# $L = \frac1B \sum_{b=1}^{B} \ell(\hat Y_b, Y_b)$: that is the empirical risk the lecture minimises, and
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
# init_params: keys and shapes of the lecture, float32, zero biases, weights of standard deviation 0.3 drawn
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
if isinstance(got, torch.Tensor) and got.shape == z.shape and torch.allclose(got, torch.softmax(z, dim=0)):
    raise AssertionError("softmax(z) normalised each column; it must normalise each row (one row = one "
                         "example): reduce over dim=1 (diagnosis: wrong_dim)")
checks.assert_close(got, torch.exp(z - torch.logsumexp(z, dim=1, keepdim=True)), name="softmax(z)")
big = [[1e4, 0.0, -1e4], [-1e4, -1e4 + 1, -1e4 + 3], [5e3, 5e3, 5e3]]
for dtype in (torch.float32, torch.float64):
    zb = torch.tensor(big, dtype=dtype)
    zb_before = zb.clone()
    got = checks.call(softmax, zb)
    if isinstance(got, torch.Tensor) and not bool(torch.isfinite(got).all()):
        raise AssertionError(f"softmax gives nan or inf for entries of size 1e4 in {dtype}: exp(1e4) overflows. "
                             "Subtract each row's maximum before taking exp (diagnosis: nan)")
    ref = torch.exp(zb.double() - torch.logsumexp(zb.double(), dim=1, keepdim=True))
    checks.assert_close(got, ref, name=f"softmax(z) for large entries in {dtype}", dtype=dtype)
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
                            dtype=dtype)
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
    for n, bs, epochs, dtype in [(50, 16, 10, torch.float32), (20, 1, 5, torch.float64), (30, 64, 40, torch.float64)]:
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
    l3 = checks.call(train_mlp, {k: v.clone() for k, v in _start_params(6).items()}, *_blobs(16, 8), 0.5, 3, 4)
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
# The lecture's general scheme, for $k$ layers with $A_0$ the input and the activation on every layer:
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
# (Rows are examples here, which is why the products look transposed compared with the lecture's
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
found = [t for t in bt.tensors_in(cache) if t.shape == Ak.shape and t.dtype == Ak.dtype
         and (torch.allclose(t, Ak, rtol=1e-7, atol=1e-9) or torch.allclose(t, Uk, rtol=1e-6, atol=1e-8))]
if not found:
    raise AssertionError("the cache returned by deep_forward holds no tensor equal to the last activation A_k "
                         "(shape (B, m_k)) or to U_k: check U_l = A_{l-1} W_l^T + b_l and A_l = tanh(U_l), and keep "
                         "the values in the cache (diagnosis: values)")
### BEGIN HIDDEN TESTS
for depth, B, dtype, seed in [(1, 1, torch.float64, 52), (5, 3, torch.float64, 53), (6, 2, torch.float32, 54)]:
    weights, biases, A0, G = bt.random_deep_case(depth, batch=B, dtype=dtype, seed=seed)
    Ak, _, _ = bt.deep_reference(weights, biases, A0, G)
    cache = bt.call_backward(deep_forward, weights, biases, A0, name="deep_forward")
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-7, atol=1e-9)
    if not any(t.shape == Ak.shape and (torch.allclose(t.double(), Ak, **tol)
                                        or torch.allclose(torch.tanh(t.double()), Ak, **tol))
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
# lecture's $O(k^2 m^2)$ and $O(k m^2)$, each scaled to match its measurement on the largest sizes.

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
#
# ## What to take away
#
# * The chain rule says *what* the derivative is; backpropagation is the order of computation that makes it
#   cheap: bottom-up dynamic programming over the graph, each $\partial L / \partial(\text{node})$ computed once.
# * Two deltas carry the whole one-hidden-layer network: $\delta^y = \hat y - y$ and
#   $\delta^h = (1 - h^2) \odot (\delta^y W_y)$; every weight gradient is a delta times the layer's input.
# * With a batch, gradients are averaged like the loss; biases sum their deltas over the batch.
# * The same scheme handles $k$ layers in $O(k m^2)$, the cost of a forward pass, instead of $O(k^2 m^2)$.
