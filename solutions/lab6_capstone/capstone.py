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
# # Lab 6 — Capstone: your own framework on real digits
#
# In the earlier labs you wrote every piece of a training pipeline once: the layers and the loss as `torch.autograd.Function`s (lab 5), Xavier initialisation (lab 3), the Adam update (lab 2), a mini-batch loop (lab 3). In this lab you put them together into one small framework and train it on real handwritten digits, the way a practitioner would: **check first, then train, then look at the mistakes**.
#
# | part | what you build or do |
# | --- | --- |
# | 1. The pieces | `LinearFunction`, `Tanh`, `SoftmaxCrossEntropy`, `xavier_init`, `adam_step` (paste yours or write them again) |
# | 2. The network | `Capstone(sizes)`: linear layers with tanh between them, made only of your Functions |
# | 3. Sanity checks | `initial_loss_check` (the loss starts near $\log K$), `overfit_small` (32 examples learnt by heart), a finite-difference spot check |
# | 4. Training | `train_capstone` (mini-batches, Adam, one state for the whole run) and `evaluate` |
# | 5. Results | a learning-rate sweep, the training curve, the confusion matrix, the misclassified digits |
# | 6. Comparison | the same network in `torch.nn` + `torch.optim.Adam`: speed, accuracy, curves |
#
# The ideas come from the lectures: the tanh MLP with a softmax output trained by backpropagation (seeds 000 and 001), autograd and writing your own operator (seeds 000 and 002), the cross-entropy loss as the sensible default for classification (seed 003), and networks seen as building blocks (seed 004). The sanity checks follow Andrej Karpathy's "A Recipe for Training Neural Networks" and the CS231n notes (see the sources at the end).
#
# The data are scikit-learn's 8x8 digits (1,797 images, pixels scaled by 1/16) split 80/20 with a fixed seed. If the environment variable `BACKPROPLAB_MNIST` names a folder holding the MNIST IDX files, the notebook uses MNIST instead.
#
# Only the exercise cells are graded: put any helper function you write inside the exercise's cell.

# %%
import copy
import math
import time

import torch
import torch.nn.functional as F
from backproplab import capstone_checks, capstone_plots, checks, data, env, function_checks, needs, plots
from torch import nn

# %%
# %matplotlib inline
env.check_environment()
torch.set_num_threads(1)  # the tensors here are small: one thread avoids the cost of keeping several in step

# %% [markdown]
# ## 0. The data
#
# `data.capstone_split()` returns the training and test sets. Every image is a row of pixel values in $[0, 1]$; the labels are the digits 0 to 9. The test set is used only to *measure*: nothing below is tuned on it except the final report (a real project would hold out a third, validation, set for the learning-rate choice).

# %%
x_train, y_train, x_test, y_test, data_name = data.capstone_split(seed=0)
nb_classes = int(y_train.max()) + 1
nx = x_train.shape[1]
on_mnist = data_name.startswith("MNIST")
print(f"{data_name}: {len(x_train)} training and {len(x_test)} test images of {nx} pixels, {nb_classes} classes")
print("examples per class in the training set:", torch.bincount(y_train, minlength=nb_classes).tolist())

fig, ax = plots.new_figure(size=(6.0, 1.8))
plots.digit_grid(ax, x_train[:24], nrow=24)
ax.set_title("the first 24 training images; labels " + " ".join(str(int(v)) for v in y_train[:24]), fontsize=9)
display(fig)

# %% [markdown]
# ## 1. The pieces
#
# Each piece below has the same name and meaning as in its earlier lab, so you can paste your own version (and its tests will tell you if something drifted). Each is graded lightly, one point, with the same checks as before: `gradcheck` in float64 for the Functions, `torch.optim.Adam`'s own numbers for `adam_step`.
#
# ### `LinearFunction` (lab 5)
#
# $y = x W^\top + b$ with $x$ $(B, n_x)$, $W$ $(n_y, n_x)$, $b$ $(n_y,)$; with $G = \partial L / \partial y$, the gradients are $G W$, $G^\top x$ and the column sums of $G$, and `None` where `ctx.needs_input_grad` is False or `b` is None.

# %% deletable=false nbgrader={"grade": false, "grade_id": "LinearFunction", "locked": false, "schema_version": 3, "solution": true, "task": false}
class LinearFunction(torch.autograd.Function):
    """y = x W^T + b; grads (G W, G^T x, sum of G over rows), None where not needed or b is None."""

    @staticmethod
    def forward(ctx, x, W, b=None):
        ### BEGIN SOLUTION
        ctx.save_for_backward(x, W)
        out = x.matmul(W.t())  # (B, ny)
        return out if b is None else out + b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        x, W = ctx.saved_tensors
        needs_x, needs_W = ctx.needs_input_grad[:2]
        needs_b = len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]
        grad_x = grad_output.matmul(W) if needs_x else None  # (B, nx)
        grad_W = grad_output.t().matmul(x) if needs_W else None  # (ny, nx)
        grad_b = grad_output.sum(dim=0) if needs_b else None  # (ny,)
        return grad_x, grad_W, grad_b
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_LinearFunction", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_LinearFunction: LinearFunction.apply(x, W, b) equals x W^T + b, its gradients equal autograd's, gradcheck passes in float64
function_checks.check_function_class(LinearFunction)
t_x = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 3.0], [2.0, 0.0, 1.0], [-1.0, 1.0, 0.5]])
t_W = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
t_b = torch.tensor([0.1, -0.2])
t_y = function_checks.run_forward(LinearFunction, t_x, t_W, t_b, input_names=["x", "W", "b"])
checks.assert_close(t_y, F.linear(t_x.double(), t_W.double(), t_b.double()), name="LinearFunction.apply(x, W, b)", dtype=torch.float32)
t_in = [t.double().requires_grad_() for t in (t_x, t_W, t_b)]
t_g = torch.tensor([[1.0, -1.0], [0.5, 2.0], [-1.5, 0.0], [0.25, 1.0]], dtype=torch.float64)
t_y = function_checks.run_forward(LinearFunction, *t_in, input_names=["x", "W", "b"])
t_grads = function_checks.run_backward(t_y, t_g, t_in, name="LinearFunction", input_names=["x", "W", "b"])
t_refs = torch.autograd.grad(F.linear(*t_in), t_in, t_g)
checks.assert_grads_close(dict(zip("xWb", t_grads)), dict(zip("xWb", t_refs)), name="LinearFunction gradient", batch_size=4)
checks.gradcheck(LinearFunction.apply, tuple(t_in), name="LinearFunction.apply")
### BEGIN HIDDEN TESTS
for t_B, t_nx, t_ny in [(1, 4, 3), (5, 2, 6)]:
    t_in = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in [(t_B, t_nx), (t_ny, t_nx), (t_ny,)]]
    checks.gradcheck(LinearFunction.apply, tuple(t_in), name=f"LinearFunction.apply, x {(t_B, t_nx)}, W {(t_ny, t_nx)}")
    t_y = function_checks.run_forward(LinearFunction, t_in[0], t_in[1], None, input_names=["x", "W", "b"])
    checks.assert_close(t_y, F.linear(t_in[0], t_in[1]), name=f"LinearFunction.apply(x, W, None), x {(t_B, t_nx)}")
### END HIDDEN TESTS

# %% [markdown]
# ### `Tanh` (lab 5)
#
# $y = \tanh(x)$; save the output, since $\tanh'(x) = 1 - y^2$.

# %% deletable=false nbgrader={"grade": false, "grade_id": "Tanh", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Tanh(torch.autograd.Function):
    """y = tanh(x); dy/dx = 1 - y^2, from the saved output y."""

    @staticmethod
    def forward(ctx, x):
        ### BEGIN SOLUTION
        out = x.tanh()
        ctx.save_for_backward(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        (out,) = ctx.saved_tensors
        return grad_output * (1 - out.pow(2))
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Tanh", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_Tanh: values and gradients equal torch.tanh's, one gradient per input, gradcheck passes in float64
function_checks.check_function_class(Tanh)
t_x = torch.tensor([-3.0, -0.7, 0.0, 0.4, 2.5], dtype=torch.float64, requires_grad=True)
t_y = function_checks.run_forward(Tanh, t_x, input_names=["x"])
checks.assert_close(t_y, torch.tanh(t_x.detach()), name="Tanh.apply(x)")
t_g = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
(t_gx,) = function_checks.run_backward(t_y, t_g, (t_x,), name="Tanh", input_names=["x"])
checks.assert_close(t_gx, torch.autograd.grad(torch.tanh(t_x), t_x, t_g)[0], name="Tanh gradient with respect to x")
checks.gradcheck(Tanh.apply, (t_x,), name="Tanh.apply")
### BEGIN HIDDEN TESTS
for t_shape in [(1,), (4, 3)]:
    t_x = (torch.randn(*t_shape, dtype=torch.float64) * 2).requires_grad_()
    checks.gradcheck(Tanh.apply, (t_x,), name=f"Tanh.apply, x of shape {t_shape}")
t_x32 = torch.randn(6)
checks.assert_close(function_checks.run_forward(Tanh, t_x32), torch.tanh(t_x32.double()), name="Tanh.apply(x) in float32",
                    dtype=torch.float32)
### END HIDDEN TESTS

# %% [markdown]
# ### `SoftmaxCrossEntropy` (lab 5)
#
# For logits $z$ $(B, K)$ and integer targets $t$ $(B,)$: $L = \frac{1}{B}\sum_i \big(\log\sum_k e^{z_{ik}} - z_{i t_i}\big)$, computed stably (subtract each row's maximum), with backward $\big((\mathrm{softmax}(z) - \mathrm{onehot}(t)) / B \times \texttt{grad\_output}, \texttt{None}\big)$.

# %% deletable=false nbgrader={"grade": false, "grade_id": "SoftmaxCrossEntropy", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SoftmaxCrossEntropy(torch.autograd.Function):
    """L = mean_i(logsumexp(z_i) - z_i[t_i]); dL/dz = (softmax(z) - onehot(t)) / B * grad_output."""

    @staticmethod
    def forward(ctx, logits, target):
        ### BEGIN SOLUTION
        rows = torch.arange(logits.shape[0])
        log_probs = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (B, K), logsumexp is stable
        ctx.save_for_backward(log_probs, target)
        return -log_probs[rows, target].mean()
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output):
        ### BEGIN SOLUTION
        log_probs, target = ctx.saved_tensors
        nb_rows = log_probs.shape[0]
        delta = log_probs.exp() - F.one_hot(target, log_probs.shape[1]).to(log_probs.dtype)  # (B, K)
        return delta * (grad_output / nb_rows), None
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_SoftmaxCrossEntropy", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_SoftmaxCrossEntropy: the loss equals F.cross_entropy (batch mean), gradients ((softmax - onehot) / B * grad_output, None), gradcheck in float64
function_checks.check_function_class(SoftmaxCrossEntropy)
t_z = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0], [-2.0, 0.5, 0.5], [1.0, 1.0, -1.0]])
t_t = torch.tensor([0, 2, 1, 1])
t_loss = function_checks.run_forward(SoftmaxCrossEntropy, t_z, t_t, input_names=["logits", "target"])
checks.assert_close(t_loss, F.cross_entropy(t_z.double(), t_t), name="SoftmaxCrossEntropy.apply(logits, target)",
                    dtype=torch.float32, batch_size=4)
t_z = t_z.double().requires_grad_()
t_loss = function_checks.run_forward(SoftmaxCrossEntropy, t_z, t_t, input_names=["logits", "target"])
t_go = torch.tensor(0.7, dtype=torch.float64)
t_grads = function_checks.run_backward(t_loss, t_go, (t_z, t_t), name="SoftmaxCrossEntropy", input_names=["logits", "target"])
checks.assert_close(t_grads[0], torch.autograd.grad(F.cross_entropy(t_z, t_t), t_z, t_go)[0],
                    name="SoftmaxCrossEntropy gradient for the logits (grad_output = 0.7)", batch_size=4)
checks.gradcheck(SoftmaxCrossEntropy.apply, (t_z, t_t), name="SoftmaxCrossEntropy.apply")
### BEGIN HIDDEN TESTS
for t_B, t_K in [(1, 3), (6, 10)]:
    t_z = (torch.randn(t_B, t_K, dtype=torch.float64) * 3).requires_grad_()
    t_t = torch.randint(0, t_K, (t_B,))
    checks.gradcheck(SoftmaxCrossEntropy.apply, (t_z, t_t), name=f"SoftmaxCrossEntropy.apply, logits {(t_B, t_K)}")
t_z = torch.tensor([[1e4, 0.0, -1e4], [0.0, 500.0, 100.0]])
t_t = torch.tensor([2, 0])
t_loss = function_checks.run_forward(SoftmaxCrossEntropy, t_z, t_t, input_names=["logits", "target"])
if not bool(torch.isfinite(t_loss).all()):
    raise AssertionError("SoftmaxCrossEntropy is not finite for logits of size 1e4 in float32: subtract each row's maximum "
                         "before exp (diagnosis: not_stable)")
checks.assert_close(t_loss, F.cross_entropy(t_z.double(), t_t), name="SoftmaxCrossEntropy for logits up to 1e4", dtype=torch.float32)
### END HIDDEN TESTS

# %% [markdown]
# ### `xavier_init` (lab 3)
#
# A weight matrix $(n_\text{out}, n_\text{in})$ in float32, drawn uniformly from $[-a, a]$ with $a = \sqrt{6 / (n_\text{in} + n_\text{out})}$ (Glorot and Bengio), using only the given generator. Its variance $a^2/3 = 2 / (n_\text{in} + n_\text{out})$ keeps the signal's scale roughly constant from layer to layer, forward and backward.

# %% deletable=false nbgrader={"grade": false, "grade_id": "xavier_init", "locked": false, "schema_version": 3, "solution": true, "task": false}
def xavier_init(fan_in, fan_out, generator=None):
    """(fan_out, fan_in) float32 tensor, uniform on [-a, a] with a = sqrt(6 / (fan_in + fan_out))."""
    ### BEGIN SOLUTION
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    unit = torch.rand(fan_out, fan_in, generator=generator)  # uniform on [0, 1)
    return (2.0 * unit - 1.0) * bound
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_xavier_init", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_xavier_init: shape (fan_out, fan_in), float32, inside [-a, a], uniform (mean 0, variance a^2 / 3), reproducible from the generator only
t_w, t_global_used = capstone_checks.call_watching_rng(xavier_init, 30, 20, generator=torch.Generator().manual_seed(0),
                                                       name="xavier_init(30, 20, generator)")
if not isinstance(t_w, torch.Tensor) or tuple(t_w.shape) != (20, 30):
    t_shape = tuple(t_w.shape) if isinstance(t_w, torch.Tensor) else type(t_w).__name__
    raise AssertionError(f"xavier_init(30, 20) returned {t_shape}, expected a tensor of shape (fan_out, fan_in) = (20, 30) "
                         f"(diagnosis: {'transposed_shape' if t_shape == (30, 20) else 'wrong_shape'})")
if t_w.dtype != torch.float32:
    raise AssertionError(f"xavier_init returned dtype {t_w.dtype}, expected torch.float32 (diagnosis: wrong_dtype)")
t_again, t_again_used = capstone_checks.call_watching_rng(xavier_init, 30, 20, generator=torch.Generator().manual_seed(0),
                                                          name="xavier_init(30, 20, generator)")
if not torch.equal(t_w, t_again) or t_global_used or t_again_used:
    raise AssertionError("xavier_init gave different weights for two generators with the same seed, or drew from torch's "
                         "global generator: pass generator=generator to the random function (diagnosis: ignores_generator)")
t_a = math.sqrt(6 / 50)
# float32 weights may round just past a (contract): beyond a, but within float32's tolerance of it, is right
if float(t_w.abs().max()) > t_a and not checks.close(float(t_w.abs().max()), t_a, torch.float32):
    raise AssertionError(f"xavier_init(30, 20) has an entry of size {float(t_w.abs().max()):.4f}, larger than "
                         f"a = sqrt(6 / (30 + 20)) = {t_a:.4f}: draw uniformly from [-a, a] (diagnosis: values)")
t_big = checks.call(xavier_init, 300, 400, generator=torch.Generator().manual_seed(1), name="xavier_init(300, 400)").double()
t_a = math.sqrt(6 / 700)
t_n = t_big.numel()
t_mean, t_var = float(t_big.mean()), float((t_big ** 2).mean())
if abs(t_mean) > 6 * t_a / math.sqrt(3 * t_n) or abs(t_var - t_a ** 2 / 3) > 6 * math.sqrt(4 * t_a ** 4 / 45 / t_n) \
        or float(t_big.abs().max()) < 0.99 * t_a:
    raise AssertionError(f"xavier_init(300, 400) has mean {t_mean:.2e} and variance {t_var:.3e}, and reaches {float(t_big.abs().max()):.4f}; "
                         f"uniform on [-a, a] with a = {t_a:.4f} has mean 0, variance a^2 / 3 = {t_a ** 2 / 3:.3e} and reaches "
                         "nearly a (diagnosis: values)")
### BEGIN HIDDEN TESTS
for t_fi, t_fo in [(1, 5), (7, 7), (64, 10)]:
    t_w = checks.call(xavier_init, t_fi, t_fo, generator=torch.Generator().manual_seed(t_fi), name=f"xavier_init({t_fi}, {t_fo})")
    if not isinstance(t_w, torch.Tensor) or tuple(t_w.shape) != (t_fo, t_fi) or t_w.dtype != torch.float32:
        raise AssertionError(f"xavier_init({t_fi}, {t_fo}) must be a float32 tensor of shape {(t_fo, t_fi)} (diagnosis: wrong_shape)")
    t_a = math.sqrt(6 / (t_fi + t_fo))
    if float(t_w.abs().max()) > t_a and not checks.close(float(t_w.abs().max()), t_a, torch.float32):
        raise AssertionError(f"xavier_init({t_fi}, {t_fo}) leaves [-a, a] (diagnosis: values)")
### END HIDDEN TESTS

# %% [markdown]
# ### `adam_step` (lab 2)
#
# `adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)` returns `(new_w, new_state)`. The state is `{}` before the first step, then `{'t': steps taken, 'm': ..., 'v': ...}`:
#
# $$m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad w \leftarrow w - \text{lr}\,\frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \varepsilon}.$$
#
# It never modifies `w`, `g` or `state` (nor the tensors inside it), and gives the same numbers as `torch.optim.Adam`; written by hand, without `torch.optim`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "adam_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, w - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)."""
    ### BEGIN SOLUTION
    beta1, beta2 = betas
    t = state["t"] + 1 if state else 1
    m_prev = state["m"] if state else torch.zeros_like(w)
    v_prev = state["v"] if state else torch.zeros_like(w)
    m = beta1 * m_prev + (1 - beta1) * g
    v = beta2 * v_prev + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return w - lr * m_hat / (v_hat.sqrt() + eps), {"t": t, "m": m, "v": v}
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_adam_step", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_adam_step: three steps from {} give torch.optim.Adam's weights and state ('t', 'm', 'v'); w, g and state are left unchanged
def t_thread(shape, nb_steps, scale=1.0, dtype=torch.float64, **kw):
    t_w = torch.randn(*shape, dtype=dtype)
    t_state, t_ref_w, t_ref_state = {}, t_w.clone(), {}
    for t_k in range(1, nb_steps + 1):
        t_g = torch.randn(*shape, dtype=dtype) * scale
        t_copies = (t_w.clone(), t_g.clone(), {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in t_state.items()})
        t_out = checks.call(adam_step, t_w, t_g, t_state, **kw, name=f"adam_step (step {t_k})")
        if not isinstance(t_out, tuple) or len(t_out) != 2 or not isinstance(t_out[1], dict):
            raise AssertionError(f"adam_step must return (new_w, new_state), got {type(t_out).__name__} (diagnosis: wrong_return)")
        if not torch.equal(t_w, t_copies[0]) or not torch.equal(t_g, t_copies[1]) or any(
                not (torch.equal(v, t_copies[2][k]) if isinstance(v, torch.Tensor) else v == t_copies[2][k]) for k, v in t_state.items()):
            raise AssertionError("adam_step changed w, g or the state it was given: build new tensors (m = beta1 * m + ..., "
                                 "not m.mul_(...)) and return a new dict (diagnosis: modified_input)")
        t_ref_w, t_ref_state = capstone_checks.adam_with_torch(t_ref_w, t_g, t_ref_state, **kw)
        t_w, t_state = t_out
        if t_state.get("t") != t_k or type(t_state.get("t")) is not int:
            raise AssertionError(f"after step {t_k} the state's 't' is {t_state.get('t')!r}: it counts the steps taken, as a "
                                 "Python int (1 after the first step) (diagnosis: step_count)")
        checks.assert_close(t_w, t_ref_w, name=f"new_w after step {t_k} (torch.optim.Adam's value)", dtype=dtype)
        checks.assert_grads_close({k: t_state.get(k) for k in ("m", "v")}, {k: t_ref_state[k] for k in ("m", "v")},
                                  name=f"state after step {t_k}", dtype=dtype)


t_thread((4,), 3, lr=0.1)
### BEGIN HIDDEN TESTS
t_thread((1,), 5, lr=0.05, betas=(0.8, 0.99))
t_thread((3, 2), 6, scale=1e-3, lr=0.01, eps=1e-3)
t_thread((5,), 4, dtype=torch.float32, lr=0.02)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The network
#
# **Exercise.** Write `Capstone(sizes, generator=None)`, an `nn.Module` with one linear layer per pair of consecutive sizes (`sizes[0]` inputs, `sizes[-1]` classes) and tanh **between** the layers (not after the last one: `forward` returns the logits, the loss applies the softmax). Build it only from your Functions: `LinearFunction.apply` and `Tanh.apply`.
#
# * Each weight $(n_\text{out}, n_\text{in})$ comes from `xavier_init(n_in, n_out, generator=generator)`; each bias $(n_\text{out},)$ starts at 0.
# * Register them as parameters, so that `model.parameters()` finds them: `nn.Parameter` attributes, an `nn.ParameterList` (a plain Python list is invisible to `nn.Module`), or `self.register_parameter(name, p)` with `self.get_parameter(name)` for names built in a loop (the grader refuses `setattr` and `getattr` in exercise cells). The tests find your parameters by their shapes, never by their names or order.
#
# For `sizes = [64, 64, 10]`: $\mathrm{logits} = \tanh(x W_1^\top + b_1)\, W_2^\top + b_2$.

# %% deletable=false nbgrader={"grade": false, "grade_id": "Capstone", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Capstone(nn.Module):
    """logits = L_k(tanh(... tanh(L_1(x)))), L_i(h) = h W_i^T + b_i, built from LinearFunction and Tanh."""

    def __init__(self, sizes, generator=None):
        super().__init__()
        ### BEGIN SOLUTION
        pairs = list(zip(sizes[:-1], sizes[1:]))
        self.weights = nn.ParameterList([nn.Parameter(xavier_init(n_in, n_out, generator=generator)) for n_in, n_out in pairs])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(n_out)) for _, n_out in pairs])
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        h = x  # (B, sizes[0])
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            if i > 0:
                h = Tanh.apply(h)
            h = LinearFunction.apply(h, W, b)  # (B, sizes[i + 1])
        return h
        ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Capstone_init", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_Capstone_init: one weight (out, in) and one bias (out,) per layer (found by shape), weights from xavier_init with the generator, biases 0
# (graded with a stand-in xavier_init that records its calls, so this cell depends only on Capstone; the network is built where
# your code runs and the test reads its parameters)
def t_check_init(sizes):
    t_gen = torch.Generator().manual_seed(3)
    t_built = capstone_checks.build_capstone(Capstone, sizes, t_gen, name=f"Capstone({sizes}, generator=...)")
    if not t_built["is_module"]:
        raise AssertionError(f"Capstone({sizes}) is a {t_built['type']}, not an nn.Module (diagnosis: wrong_return)")
    t_record = capstone_checks.InitRecord(t_built["calls"])  # (fan_in, fan_out, Capstone's generator?, weights) per call
    t_Ws, t_bs = capstone_checks.params_by_shape(t_built["parameters"], sizes, name=f"Capstone({sizes})")
    for t_W in t_Ws:
        t_n_out, t_n_in = t_W.shape
        if t_W.dtype != torch.float32:
            raise AssertionError(f"the weight of shape {tuple(t_W.shape)} is {t_W.dtype}, expected torch.float32 (diagnosis: wrong_dtype)")
        if bool((t_W == 0).all()):
            raise AssertionError(f"the weight of shape {tuple(t_W.shape)} starts at zero: every hidden unit would get the "
                                 "same gradient; use xavier_init (diagnosis: zero_init)")
        t_src = t_record.source_of(t_W)
        if t_src is None:
            raise AssertionError(f"the weight of shape {tuple(t_W.shape)} is not a tensor returned by xavier_init: create each "
                                 f"weight with xavier_init({t_n_in}, {t_n_out}, generator=generator) (diagnosis: not_xavier)")
        if not t_src[2]:
            raise AssertionError(f"xavier_init was called for the weight of shape {tuple(t_W.shape)} without Capstone's "
                                 "generator: pass generator=generator on (diagnosis: ignores_generator)")
    for t_b in t_bs:
        if t_b.dtype != torch.float32 or bool((t_b != 0).any()):
            raise AssertionError(f"the bias of shape {tuple(t_b.shape)} must start at zero in float32, got {t_b.detach()} "
                                 f"(diagnosis: values)")


t_check_init([5, 7, 3])
### BEGIN HIDDEN TESTS
t_check_init([4, 6, 5, 3])
t_check_init([6, 2])
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_Capstone_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_Capstone_forward: logits equal the built-in chain F.linear, tanh, ..., F.linear on the model's own parameters, gradients equal
# autograd's, and the graph holds only LinearFunction and Tanh nodes
# (graded with reference LinearFunction, Tanh and xavier_init swapped in, so this cell depends only on Capstone; the network is built,
# run and differentiated where your code runs, the test compares the logits and gradients with its own float64 computation)
def t_check_forward(sizes, batch, dtype):
    t_label = f"Capstone({sizes})"
    t_biases = [torch.randn(t_shape, dtype=dtype) * 0.5 for t_shape in capstone_checks.layer_shapes(sizes)[1]]  # non-zero, so that a lost bias shows
    t_x = torch.randn(batch, sizes[0], dtype=dtype)
    t_v = torch.randn(batch, sizes[-1], dtype=torch.float64)
    t_seen = capstone_checks.capstone_forward(Capstone, sizes, t_biases, t_x.clone(), t_v.clone(), name=t_label, dtype=dtype)
    t_Ws, t_bs = t_seen["weights"], t_seen["biases"]
    t_ref_params = [p.detach().double().requires_grad_() for p in t_Ws + t_bs]
    t_ref = capstone_checks.chain_logits(t_ref_params[:len(t_Ws)], t_ref_params[len(t_Ws):], t_x.double())
    checks.assert_close(t_seen["logits"], t_ref, name=f"{t_label} logits for a batch of {batch} ({dtype})", dtype=dtype, batch_size=batch)
    t_nodes = t_seen["nodes"]
    t_other = sorted(k for k in t_nodes if k not in ("LinearFunctionBackward", "TanhBackward", "AccumulateGrad"))
    if t_other or t_nodes.get("LinearFunctionBackward", 0) != len(t_Ws) or t_nodes.get("TanhBackward", 0) != len(t_Ws) - 1:
        raise AssertionError(
            f"the graph of {t_label}(x) holds {dict(t_nodes)}: expected {len(t_Ws)} LinearFunction nodes and "
            f"{len(t_Ws) - 1} Tanh nodes, built with LinearFunction.apply and Tanh.apply only (diagnosis: builtin_used)")
    if t_seen["backward_error"] is not None:
        raise AssertionError(t_seen["backward_error"])
    t_want = torch.autograd.grad((t_ref * t_v).sum(), t_ref_params)
    t_names = [f"weight {tuple(p.shape)}" for p in t_Ws] + [f"bias {tuple(p.shape)}" for p in t_bs]
    checks.assert_grads_close(dict(zip(t_names, t_seen["grads"])), dict(zip(t_names, t_want)), name=f"{t_label} gradients",
                              dtype=dtype, batch_size=batch)


t_check_forward([5, 7, 3], 6, torch.float32)
### BEGIN HIDDEN TESTS
t_check_forward([4, 6, 5, 3], 1, torch.float64)
t_check_forward([4, 6, 5, 3], 5, torch.float32)
t_check_forward([6, 2], 3, torch.float64)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Sanity checks before training
#
# Karpathy's recipe begins with checks that cost seconds and catch the bugs that would otherwise waste hours, because a wrong network still trains, only worse. The CS231n notes give the same list. Three of them here.
#
# ### 3.1 The initial loss
#
# With small random weights, the logits of an untrained network are all close to each other, so its softmax is close to uniform: every class gets probability about $1/K$. The cross-entropy of the true class is then about $-\log(1/K) = \log K$, which is $\log 10 \approx 2.303$ for ten digits. A first loss far from that says something is off before any training: logits scaled too large (an initialisation too wide), a loss averaged wrongly, or a softmax applied twice.
#
# **Exercise.** Write `initial_loss_check(model, x, y)`: the mean cross-entropy of `model`'s logits on `(x, y)`, as a Python float. It computes, it does not train.

# %% deletable=false nbgrader={"grade": false, "grade_id": "initial_loss_check", "locked": false, "schema_version": 3, "solution": true, "task": false}
def initial_loss_check(model, x, y):
    """Mean cross-entropy of model(x) against y, a Python float (about log K for an untrained model)."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        loss = SoftmaxCrossEntropy.apply(model(x), y)
    return loss.item()
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_initial_loss_check", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_initial_loss_check: a Python float equal to the cross-entropy the test computes from the model's logits; the model is not trained
# (the model is the test's, from torch.nn, a copy of it given to your function; a reference SoftmaxCrossEntropy is swapped in)
def t_check_initial(sizes, batch, seed):
    t_model = capstone_checks.builtin_mlp(sizes, seed=seed)
    t_x, t_y = capstone_checks.class_blobs(batch, sizes[0], sizes[-1], seed=seed + 1)
    t_run = capstone_checks.run_with_model(initial_loss_check, t_model, sizes, t_x.clone(), t_y.clone(),
                                           swap=["SoftmaxCrossEntropy"], name="initial_loss_check")
    t_got = t_run.result
    with torch.no_grad():
        t_logits = t_model(t_x).double()
    t_want = F.cross_entropy(t_logits, t_y).item()
    t_twice = F.cross_entropy(torch.softmax(t_logits, dim=1), t_y).item()
    if any(not torch.equal(a, b.detach()) for a, b in zip(t_run.parameters, t_model.parameters())):
        raise AssertionError("initial_loss_check changed the model's parameters: it only measures the loss (diagnosis: values)")
    # the model computes in float32; a cross-entropy rounds the logits, so it is off by eps * max|logit| at most
    t_rule = {"magnitude": float(t_logits.abs().max())}
    if isinstance(t_got, float) and checks.close(t_got, t_twice, torch.float32, **t_rule) \
            and not checks.close(t_got, t_want, torch.float32, **t_rule):
        raise AssertionError(
            f"initial_loss_check gives {t_got:.5f}, the cross-entropy of softmax(logits) treated as logits; the right value is "
            f"{t_want:.5f}. The model returns logits and the cross-entropy applies the softmax itself: applying it twice squeezes "
            f"every probability towards 1/K, so the loss lands near log K = {math.log(sizes[-1]):.4f} whatever the model does "
            "(diagnosis: softmax_twice)")
    checks.assert_python_float(t_got, t_want, name=f"initial_loss_check on {batch} examples, {sizes[-1]} classes",
                               dtype=torch.float32, **t_rule)


t_check_initial([6, 8, 4], 12, 1)
### BEGIN HIDDEN TESTS
t_check_initial([64, 20, 10], 50, 2)
t_check_initial([5, 7, 6, 3], 1, 3)
### END HIDDEN TESTS

# %% [markdown]
# Your untrained network on the training set, against $\log K$:

# %%
with needs("Capstone", "xavier_init", "LinearFunction", "Tanh", "initial_loss_check"):
    model = Capstone([nx, 64, nb_classes], generator=torch.Generator().manual_seed(0))
    start_loss = initial_loss_check(model, x_train, y_train)
    print(f"initial loss {start_loss:.4f}   log K = log {nb_classes} = {math.log(nb_classes):.4f}   "
          f"difference {start_loss - math.log(nb_classes):+.4f}")
    with torch.no_grad():
        logits = model(x_train)
        probs = torch.softmax(logits, dim=1)
        twice = F.cross_entropy(torch.softmax(logits, dim=1), y_train).item()
    print(f"spread of the logits: std {logits.std().item():.3f}; largest class probability on average {probs.max(1).values.mean():.3f}"
          f" (uniform would be {1 / nb_classes:.3f})")
    print(f"what softmax applied twice would report: {twice:.4f}, closer to log K, and wrong")

# %% [markdown]
# The difference from $\log K$ is not zero: with pixels in $[0, 1]$ and Xavier weights the logits have a standard deviation of a few tenths, enough to move the loss by up to about 0.25. A much larger gap would be a warning. Notice the trap in the last line: a softmax applied to outputs that are already probabilities squeezes them all towards $1/K$ (their spread is below 1, and $e^{p}$ varies little), so that loss starts almost exactly at $\log K$, and it can never fall below $\log(1 + (K-1)/e) \approx 1.46$ for ten classes, however well the network learns (a perfect one-hot output becomes probability $e / (e + K - 1)$ for the true class). "Closest to $\log K$" is not the test; "the loss computed correctly is near $\log K$" is.
#
# **Question.** Why should the initial loss of a $K$-class classifier be close to $\log K$, and what would each of these tell you: an initial loss of 8 for ten classes; an initial loss of 2.3026 exactly that stays there during training?

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_initial_loss", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# At initialisation the weights are small and random, so the logits of all classes are nearly equal and the softmax is close to uniform, 1/K for every class. The cross-entropy is minus the log of the probability of the true class, so about -log(1/K) = log K (2.303 for K = 10), whatever the true class is. It is a prediction we can make before training, hence a cheap test of the whole forward pass and loss.
#
# An initial loss of 8 for ten classes means the network is confidently wrong from the start: the logits are far too large (an initialisation scale too big, or unscaled inputs such as raw pixels 0..255 instead of [0, 1]), so the softmax puts nearly all its mass on one class, often the wrong one. Training from there wastes the first epochs undoing it, or saturates the tanh units.
#
# A loss of exactly log 10 that does not move means the outputs carry no information: the logits are all equal (weights or last layer at zero, a detached graph so no gradient arrives), or the softmax is applied twice, which flattens any output into nearly uniform probabilities: the loss then starts at log K almost exactly and cannot go below log(1 + 9/e), about 1.46, however well the network learns.
# ### END SOLUTION

# %% [markdown]
# ### 3.2 Overfit a tiny batch
#
# A network with thousands of parameters must be able to learn 32 examples by heart. If the loss on them does not go to nearly zero in a few hundred steps, something between the loss and the update is broken (a gradient that does not reach the parameters, an update with the wrong sign, a learning rate far off), and there is no point training on the full set yet.
#
# **Exercise.** Write `overfit_small(model, x, y, nb_steps, lr)`: `nb_steps` full-batch updates of every parameter of `model` with your `adam_step` (one Adam state per parameter, kept across the steps) on the mean cross-entropy of `(x, y)`; return the list of the `nb_steps` losses as Python floats (recorded before or after each update, as you prefer). No `torch.optim` here: the update is yours. To update a parameter in place, write the new value into it under `torch.no_grad()`, for example `p.copy_(new_p)`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "overfit_small", "locked": false, "schema_version": 3, "solution": true, "task": false}
def overfit_small(model, x, y, nb_steps, lr):
    """nb_steps full-batch adam_step updates on the mean cross-entropy of (x, y); returns the losses."""
    ### BEGIN SOLUTION
    params = list(model.parameters())  # the tensors adam_step updates, in place
    states = [{} for _ in params]
    losses = []
    for _ in range(nb_steps):
        loss = SoftmaxCrossEntropy.apply(model(x), y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for k, (p, g) in enumerate(zip(params, grads)):
                new_p, states[k] = adam_step(p.detach(), g, states[k], lr=lr)
                p.copy_(new_p)
        losses.append(loss.item())
    return losses
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_overfit_small", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_overfit_small: nb_steps Python floats equal to the losses torch.optim.Adam gives on the same full batch (before or after each update)
# (the model is the test's, from torch.nn, a copy of it given to your function; reference adam_step and SoftmaxCrossEntropy are swapped in)
def t_check_overfit(sizes, batch, nb_steps, lr, seed):
    t_model = capstone_checks.builtin_mlp(sizes, seed=seed)
    t_x, t_y = capstone_checks.class_blobs(batch, sizes[0], sizes[-1], seed=seed + 1)
    t_before, t_after = capstone_checks.torch_adam_losses(t_model, t_x, t_y, nb_steps, lr)
    t_run = capstone_checks.run_with_model(overfit_small, t_model, sizes, t_x.clone(), t_y.clone(), nb_steps, lr,
                                           swap=["adam_step", "SoftmaxCrossEntropy"], name="overfit_small")
    t_got, t_record = t_run.result, t_run.adam
    if not isinstance(t_got, list) or len(t_got) != nb_steps:
        raise AssertionError(f"overfit_small(..., nb_steps={nb_steps}, ...) must return a list of {nb_steps} losses, got "
                             f"{type(t_got).__name__} of length {t_run.length if t_run.length is not None else '?'} (diagnosis: step_count)")
    if not all(type(v) is float for v in t_got):
        raise AssertionError(f"overfit_small must return Python floats (loss.item()), got {type(t_got[0]).__name__} (diagnosis: wrong_dtype)")
    t_nb_params = len(list(t_model.parameters()))
    if not t_record.steps:
        raise AssertionError("overfit_small never called adam_step: update every parameter with your adam_step, not with "
                             "torch.optim or a plain gradient step (diagnosis: adam_unused)")
    if t_record.fresh > t_nb_params:
        raise AssertionError(f"adam_step was started from an empty state {t_record.fresh} times for {t_nb_params} parameters: "
                             "create one state per parameter before the loop and keep the one adam_step returns "
                             "(diagnosis: optimizer_reset)")
    if any(not checks.close(v, lr) for v in t_record.lrs):
        raise AssertionError(f"adam_step was called with lr={t_record.lrs[0]}, not the lr={lr} given (diagnosis: values)")
    # float32 training: each loss comes after as many Adam steps as came before it, nb_steps at most
    t_close = [checks.close(t_got, ref, torch.float32, steps=nb_steps) for ref in (t_before, t_after)]
    if not any(t_close):
        raise AssertionError(
            f"overfit_small's losses differ from full-batch Adam's on the same model and data: first ones {[round(v, 5) for v in t_got[:4]]}, "
            f"expected {[round(v, 5) for v in t_before[:4]]} (recorded before each update) or {[round(v, 5) for v in t_after[:4]]} "
            "(after); use all the given examples at every step, the mean cross-entropy, and adam_step on every parameter "
            "(diagnosis: values)")


t_check_overfit([8, 16, 4], 32, 30, 0.02, 2)
### BEGIN HIDDEN TESTS
t_check_overfit([6, 9, 7, 3], 24, 12, 0.05, 3)
t_check_overfit([5, 8, 2], 1, 5, 0.01, 4)
### END HIDDEN TESTS

# %% [markdown]
# Now your network on 32 training digits. The loss should fall to nearly zero: the network has enough parameters to memorise them.

# %%
with needs("Capstone", "overfit_small", "adam_step", "SoftmaxCrossEntropy"):
    small_model = Capstone([nx, 64, nb_classes], generator=torch.Generator().manual_seed(1))
    overfit_losses = overfit_small(small_model, x_train[:32], y_train[:32], nb_steps=200, lr=1e-2)
    with torch.no_grad():
        small_acc = (small_model(x_train[:32]).argmax(1) == y_train[:32]).float().mean().item()
    print(f"loss on the 32 examples: {overfit_losses[0]:.3f} at the start, {overfit_losses[-1]:.2e} after 200 steps; "
          f"accuracy on them {small_acc:.0%}")
    with torch.no_grad():
        rest_acc = (small_model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"accuracy of this memorising network on the test set: {rest_acc:.1%}")
    fig, ax = plots.new_figure(size=(5.5, 3.2))
    plots.loss_curves(ax, {"loss on 32 training examples": overfit_losses}, xlabel="step")
    display(fig)

# %% [markdown]
# **Question.** The loss on 32 examples went to nearly zero. What does that prove about your code, and what does it *not* prove? Give one bug this test would catch and one it would miss.

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_overfit", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# It proves that the whole chain works end to end on a problem we know has a solution: the forward pass produces logits that depend on the parameters, the loss is computed from them, gradients reach every layer with the right sign, and the update moves the parameters downhill at a usable learning rate. A network with thousands of parameters can always memorise 32 examples, so failure to do so means a bug, not a hard problem.
#
# It does not prove that the network generalises (memorising 32 images says nothing about new ones: the test accuracy of that network is poor), that the learning rate suits the full data set, that the data pipeline is right for the rest of the set (shuffling, labels of other batches), or that the gradients are exactly right: a slightly wrong gradient (say a missing factor 1/B, or a small error in one layer's backward) still points downhill often enough for Adam to drive the loss to zero.
#
# Caught: a gradient that never reaches the parameters (a detached tensor, an update with the wrong sign, a learning rate of 0), or labels misaligned with the images inside the batch. Missed: a bias gradient off by a constant factor, the test set's preprocessing differing from the training set's, or overfitting on the full data.
# ### END SOLUTION

# %% [markdown]
# ### 3.3 A finite-difference spot check of one layer
#
# The gradients come from backward rules *you* wrote. `gradcheck` checked each Function alone; here we check the assembled network, on a few entries of the first layer's weight: perturb one entry by $\pm\varepsilon$, recompute the loss, and compare $\big(L(w + \varepsilon) - L(w - \varepsilon)\big) / 2\varepsilon$ with the gradient your backward produced. In float64, with $\varepsilon = 10^{-6}$, they should agree to about 7 digits.

# %%
def spot_check(model, x, y, nb_entries=5, eps=1e-6, seed=0):
    """Central differences against autograd on random entries of the model's first weight (float64)."""
    model64 = copy.deepcopy(model).double()
    first = next(p for p in model64.parameters() if p.dim() == 2 and p.shape[1] == x.shape[1])
    x64 = x.double()
    (grad,) = torch.autograd.grad(SoftmaxCrossEntropy.apply(model64(x64), y), first)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(nb_entries):
        i, j = (int(torch.randint(0, n, (1,), generator=gen)) for n in first.shape)
        with torch.no_grad():
            first[i, j] += eps
            up = SoftmaxCrossEntropy.apply(model64(x64), y).item()
            first[i, j] -= 2 * eps
            down = SoftmaxCrossEntropy.apply(model64(x64), y).item()
            first[i, j] += eps
        numeric = (up - down) / (2 * eps)
        rows.append((i, j, grad[i, j].item(), numeric))
    return rows


with needs("Capstone", "SoftmaxCrossEntropy"):
    spots = spot_check(model, x_train[:64], y_train[:64], nb_entries=6)
    print(f"{'entry':>10}  {'backward':>14}  {'finite diff.':>14}  {'rel. error':>10}")
    for i, j, analytic, numeric in spots:
        rel = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-12)
        print(f"{str((i, j)):>10}  {analytic:>14.6e}  {numeric:>14.6e}  {rel:>10.1e}")

# %% [markdown]
# Entries whose pixel is always 0 in these 64 images (the digits' border) have a gradient of exactly 0 on both sides. The others agree to six digits or better: the finite difference carries an error of about $10^{-10}$ of its own (rounding in $L(w \pm \varepsilon)$ divided by $2\varepsilon$, and the $\varepsilon^2$ term), so the relative error is largest where the gradient itself is small.
#
# ## 4. Training
#
# **Exercise.** Write `evaluate(model, x, y)`: the fraction of rows of `x` whose largest logit is at the true class `y`, as a Python float between 0 and 1 (not a percentage).

# %% deletable=false nbgrader={"grade": false, "grade_id": "evaluate", "locked": false, "schema_version": 3, "solution": true, "task": false}
def evaluate(model, x, y):
    """Fraction of rows i with argmax_k model(x)[i, k] == y[i], a Python float in [0, 1]."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        predicted = model(x).argmax(dim=1)
    return int((predicted == y).sum()) / len(y)
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_evaluate", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_evaluate: a Python float in [0, 1], the fraction of rows whose argmax equals the label (model built by the test from torch.nn)
def t_check_evaluate(sizes, batch, seed):
    t_model = capstone_checks.builtin_mlp(sizes, seed=seed)
    t_x, t_y = capstone_checks.class_blobs(batch, sizes[0], sizes[-1], seed=seed + 1, spread=1.5)
    with torch.no_grad():
        t_want = (t_model(t_x).argmax(1) == t_y).double().mean().item()
    t_got = capstone_checks.run_with_model(evaluate, t_model, sizes, t_x.clone(), t_y.clone(), name="evaluate").result
    # the fraction may be a float32 mean (.float().mean().item()): float32 is the precision of every comparison here
    if isinstance(t_got, (int, float)) and not isinstance(t_got, bool) and t_want > 0 \
            and checks.close(t_got, 100 * t_want, torch.float32):
        raise AssertionError(f"evaluate returned {t_got}, a percentage; return the fraction {t_want} (diagnosis: percentage)")
    if isinstance(t_got, (int, float)) and not isinstance(t_got, bool) and t_want > 0 and batch > 1 \
            and checks.close(t_got, batch * t_want, torch.float32):
        raise AssertionError(f"evaluate returned {t_got}, the number of correct rows; divide by the number of rows, {batch} "
                             "(diagnosis: values)")
    checks.assert_python_float(t_got, t_want, name=f"evaluate on {batch} rows", dtype=torch.float32)


t_check_evaluate([6, 8, 4], 40, 5)
### BEGIN HIDDEN TESTS
t_check_evaluate([64, 20, 10], 123, 6)
t_check_evaluate([5, 7, 6, 3], 1, 7)
t_check_evaluate([5, 7, 6, 3], 1, 8)
### END HIDDEN TESTS

# %% [markdown]
# **Exercise.** Write `train_capstone(model, x, y, nb_epochs, batch_size, lr, generator=None)`, mini-batch training with your pieces:
#
# * Each epoch draws a new random order of the `N` examples **from `generator` only** (for example `torch.randperm(N, generator=generator)`), then visits them in mini-batches of `batch_size`.
# * For each mini-batch: the loss `SoftmaxCrossEntropy.apply(model(xb), yb)`, its gradients with respect to the parameters (`torch.autograd.grad` or `.backward()`), then `adam_step` on every parameter.
# * **One** Adam state per parameter for the **whole run**: created once, before the first epoch, and carried from step to step and from epoch to epoch. Restarting it would reset Adam's running averages and its step count $t$.
# * Return the list of per-epoch values, each the **mean** of that epoch's mini-batch losses, as Python floats.
#
# No `torch.optim` here either.

# %% deletable=false nbgrader={"grade": false, "grade_id": "train_capstone", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_capstone(model, x, y, nb_epochs, batch_size, lr, generator=None):
    """Mini-batch adam_step training on SoftmaxCrossEntropy; returns the mean batch loss of each epoch."""
    ### BEGIN SOLUTION
    params = list(model.parameters())  # every weight and bias, updated in place
    states = [{} for _ in params]  # one Adam state per parameter, for the whole run
    nb_rows = x.shape[0]
    epoch_means = []
    for _ in range(nb_epochs):
        order = torch.randperm(nb_rows, generator=generator)
        batch_losses = []
        for start in range(0, nb_rows, batch_size):
            rows = order[start:start + batch_size]
            loss = SoftmaxCrossEntropy.apply(model(x[rows]), y[rows])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for k, (p, g) in enumerate(zip(params, grads)):
                    new_p, states[k] = adam_step(p.detach(), g, states[k], lr=lr)
                    p.copy_(new_p)
            batch_losses.append(loss.item())
        epoch_means.append(sum(batch_losses) / len(batch_losses))
    return epoch_means
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_train_capstone", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_train_capstone: nb_epochs Python floats, each the mean of that epoch's mini-batch losses (one SoftmaxCrossEntropy and one
# adam_step per parameter per mini-batch); the loss falls. The model is the test's (torch.nn); reference adam_step and loss are swapped in.
def t_check_train(sizes, n, nb_epochs, batch_size, lr, seed):
    t_model = capstone_checks.builtin_mlp(sizes, seed=seed)
    t_x, t_y = capstone_checks.class_blobs(n, sizes[0], sizes[-1], seed=seed + 1)
    t_run = capstone_checks.run_with_model(train_capstone, t_model, sizes, t_x.clone(), t_y.clone(), nb_epochs, batch_size, lr,
                                           generator=torch.Generator().manual_seed(seed), swap=["adam_step", "SoftmaxCrossEntropy"],
                                           name="train_capstone")
    t_got, t_record, t_losses = t_run.result, t_run.adam, t_run.loss
    t_label = f"train_capstone(N={n}, nb_epochs={nb_epochs}, batch_size={batch_size})"
    if not isinstance(t_got, list) or len(t_got) != nb_epochs:
        raise AssertionError(f"{t_label} must return a list of {nb_epochs} per-epoch losses, got {type(t_got).__name__} of "
                             f"length {t_run.length if t_run.length is not None else '?'} (diagnosis: step_count)")
    if not all(type(v) is float for v in t_got):
        raise AssertionError(f"train_capstone must return Python floats (loss.item()), got {type(t_got[0]).__name__} (diagnosis: wrong_dtype)")
    if not t_record.steps:
        raise AssertionError("train_capstone never called adam_step: update every parameter with your adam_step, not with "
                             "torch.optim or a plain gradient step (diagnosis: adam_unused)")
    t_nb_batches = n // batch_size
    if not t_losses.values:
        raise AssertionError("train_capstone never trained on a loss computed by SoftmaxCrossEntropy.apply: compute each "
                             "mini-batch's loss with your SoftmaxCrossEntropy (diagnosis: builtin_used)")
    if len(t_losses.values) != nb_epochs * t_nb_batches:
        raise AssertionError(f"{t_label} took {len(t_losses.values)} gradient steps on a loss; expected {t_nb_batches} mini-batches "
                             f"per epoch, {nb_epochs * t_nb_batches} in all (diagnosis: step_count)")
    t_nb_params = len(list(t_model.parameters()))
    if len(t_record.steps) % (nb_epochs * t_nb_batches) or max(t_record.steps) != nb_epochs * t_nb_batches:
        raise AssertionError(f"{t_label} called adam_step {len(t_record.steps)} times, reaching step t = {max(t_record.steps)}; "
                             f"expected the same number of calls for each of the {nb_epochs * t_nb_batches} mini-batches (once per "
                             f"parameter: {t_nb_params} here) and each state to reach t = {nb_epochs * t_nb_batches} (diagnosis: step_count)")
    t_groups = [t_losses.values[e * t_nb_batches:(e + 1) * t_nb_batches] for e in range(nb_epochs)]
    t_means = [sum(g) / len(g) for g in t_groups]
    t_sums = [sum(g) for g in t_groups]
    def t_same(a, b):  # the mean of float32 losses may be taken in float32 (torch.tensor(losses).mean())
        return checks.close(a, b, torch.float32)
    if t_nb_batches > 1 and t_same(t_got, t_sums):
        raise AssertionError(f"{t_label} returns the sum of each epoch's {t_nb_batches} batch losses; return their mean "
                             "(diagnosis: sum_not_mean)")
    if not t_same(t_got, t_means):
        raise AssertionError(f"{t_label} returned {[round(v, 5) for v in t_got]}; the means of each epoch's mini-batch losses "
                             f"were {[round(v, 5) for v in t_means]} (diagnosis: values)")
    if nb_epochs > 1 and not t_got[-1] < t_got[0]:
        raise AssertionError(f"the loss did not fall: {t_got[0]:.4f} in the first epoch, {t_got[-1]:.4f} in the last (diagnosis: not_learning)")


t_check_train([6, 12, 3], 48, 4, 12, 0.02, 1)
### BEGIN HIDDEN TESTS
t_check_train([5, 7, 6, 4], 40, 3, 8, 0.01, 2)
t_check_train([4, 6, 3], 6, 2, 1, 0.01, 3)
t_check_train([4, 6, 3], 20, 3, 20, 0.05, 4)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_train_capstone_adam", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# test_train_capstone_adam: one Adam state per parameter for the whole run: with the full batch (one step per epoch) the per-epoch
# losses equal those of torch.optim.Adam on the same model (the test's, from torch.nn; reference adam_step and loss swapped in)
def t_check_adam_run(sizes, n, nb_epochs, lr, seed):
    t_model = capstone_checks.builtin_mlp(sizes, seed=seed)
    t_x, t_y = capstone_checks.class_blobs(n, sizes[0], sizes[-1], seed=seed + 1)
    t_want, _ = capstone_checks.torch_adam_losses(t_model, t_x, t_y, nb_epochs, lr)
    t_run = capstone_checks.run_with_model(train_capstone, t_model, sizes, t_x.clone(), t_y.clone(), nb_epochs, n, lr,
                                           generator=torch.Generator().manual_seed(seed), swap=["adam_step", "SoftmaxCrossEntropy"],
                                           name="train_capstone")
    t_got, t_record = t_run.result, t_run.adam
    if not t_record.steps:
        raise AssertionError("train_capstone never called adam_step (diagnosis: adam_unused)")
    t_nb_params = len(list(t_model.parameters()))
    if t_record.fresh > t_nb_params:
        raise AssertionError(f"adam_step was started from an empty state {t_record.fresh} times for {t_nb_params} parameters "
                             f"over {nb_epochs} epochs: create the states once, before the first epoch, and keep the ones "
                             "adam_step returns (diagnosis: optimizer_reset)")
    if any(not checks.close(v, lr) for v in t_record.lrs):
        raise AssertionError(f"adam_step was called with lr={t_record.lrs[0]}, not the lr={lr} given (diagnosis: values)")
    # float32 training, one Adam step per epoch: the last loss comes after nb_epochs steps
    if not isinstance(t_got, list) or len(t_got) != nb_epochs or not checks.close(t_got, t_want, torch.float32, steps=nb_epochs):
        raise AssertionError(f"with batch_size = N = {n}, train_capstone's per-epoch losses should be those of full-batch "
                             f"torch.optim.Adam(lr={lr}): expected {[round(v, 5) for v in t_want]}, got "
                             f"{[round(v, 5) for v in t_got] if isinstance(t_got, list) else t_got} (diagnosis: values)")


t_check_adam_run([6, 10, 3], 30, 6, 0.05, 11)
### BEGIN HIDDEN TESTS
t_check_adam_run([5, 8, 7, 4], 16, 5, 0.02, 12)
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_train_capstone_generator", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# test_train_capstone_generator: the shuffling draws from the generator only: same seed, same losses; another seed, other losses;
# torch's global random state untouched (the model is the test's; reference adam_step and loss swapped in)
def t_run_with(seed):
    t_model = capstone_checks.builtin_mlp([6, 10, 3], seed=21)
    t_x, t_y = capstone_checks.class_blobs(40, 6, 3, seed=22)
    t_gen = torch.Generator().manual_seed(seed)
    t_gen_before = t_gen.get_state()
    t_run = capstone_checks.run_with_model(train_capstone, t_model, [6, 10, 3], t_x, t_y, 3, 10, 0.02, generator=t_gen,
                                           swap=["adam_step", "SoftmaxCrossEntropy"], name="train_capstone")
    t_got = t_run.result
    if t_run.global_rng_used:
        raise AssertionError("train_capstone drew from torch's global random generator although a generator was given: pass "
                             "generator=generator to torch.randperm (or whatever draws the order) (diagnosis: ignores_generator)")
    return t_got, not torch.equal(t_gen_before, t_gen.get_state())


t_first, t_used = t_run_with(5)
t_second, _ = t_run_with(5)
if t_first != t_second:
    raise AssertionError("two runs from the same model with generators of the same seed gave different losses: draw every random "
                         "number with the generator argument (diagnosis: ignores_generator)")
t_third, _ = t_run_with(6)
if not t_used or t_third == t_first:
    raise AssertionError("the losses do not depend on the generator's seed: the mini-batches are not shuffled, or not with "
                         "the generator; draw a new order of the examples every epoch from it (diagnosis: not_shuffled)")

# %% [markdown]
# ## 5. Results
#
# ### 5.1 A learning-rate sweep
#
# The learning rate is the first knob to set. A short run at a few values spaced by factors of about 3 is enough to see the three regimes of lab 2: too small (the loss falls slowly), about right, too large (the loss falls fast and then stalls high or bounces). Each run below is 3 epochs from the same initial weights and the same shuffling.

# %%
if on_mnist:  # bigger inputs: a wider hidden layer, bigger batches, fewer epochs
    SIZES, BATCH, NB_EPOCHS, LR = [nx, 128, nb_classes], 64, 10, 3e-3
else:
    SIZES, BATCH, NB_EPOCHS, LR = [nx, 64, nb_classes], 32, 25, 1e-2

with needs("Capstone", "train_capstone", "adam_step", "evaluate"):
    init_model = Capstone(SIZES, generator=torch.Generator().manual_seed(0))
    sweep = {}
    for lr in (1e-3, 3e-3, 1e-2, 3e-2, 1e-1):
        trial = copy.deepcopy(init_model)
        sweep[lr] = train_capstone(trial, x_train, y_train, 3, BATCH, lr, generator=torch.Generator().manual_seed(0))
        print(f"lr = {lr:<6g} loss per epoch {[round(v, 3) for v in sweep[lr]]}   training accuracy {evaluate(trial, x_train, y_train):.3f}")
    fig, ax = plots.new_figure(size=(5.5, 3.5))
    capstone_plots.draw_lr_sweep(ax, sweep)
    display(fig)

# %% [markdown]
# With Adam the useful range is wide because each parameter's step is normalised by its own gradient scale: the step is roughly `lr` in size, whatever the gradient's magnitude. On the digits `lr = 1e-2` gets furthest in 3 epochs; `1e-1` makes steps too big for the weights' scale (about 0.2 for the first layer) and the loss stalls higher. We train with the value set in the cell above.
#
# ### 5.2 The training run
#
# The full run from the same initial weights, then the accuracy on the training and the test set. The test set is used once, here, to report the result.

# %%
with needs("Capstone", "train_capstone", "evaluate"):
    model = copy.deepcopy(init_model)
    start = time.perf_counter()
    train_losses = train_capstone(model, x_train, y_train, NB_EPOCHS, BATCH, LR, generator=torch.Generator().manual_seed(1))
    seconds_mine = time.perf_counter() - start
    acc_train, acc_test = evaluate(model, x_train, y_train), evaluate(model, x_test, y_test)
    print(f"{NB_EPOCHS} epochs in {seconds_mine:.2f} s; mean training loss in the last epoch {train_losses[-1]:.4f}")
    print(f"accuracy on {data_name}: training {acc_train:.2%}, test {acc_test:.2%}")
    fig, ax = plots.new_figure(size=(5.5, 3.5))
    plots.loss_curves(ax, {"your framework: mean mini-batch loss": train_losses}, xlabel="epoch")
    display(fig)

# %% [markdown]
# The curve is each epoch's *mean* mini-batch loss, so it lags the network a little: early batches of an epoch were computed with older weights. The training accuracy reaches (nearly) 100% while the test accuracy stays a couple of points lower: the gap is what the network learnt about these particular images rather than about digits.
#
# ### 5.3 Which digits are confused?
#
# The confusion matrix counts, for each true class (row), how often each class was predicted (column). The diagonal holds the correct answers; everything else is a mistake, and its position says which pair of digits the network mixes up.

# %%
with needs("Capstone", "train_capstone", "evaluate"):
    with torch.no_grad():
        predicted_test = model(x_test).argmax(dim=1)
    counts = capstone_plots.confusion_matrix(y_test, predicted_test, nb_classes)
    per_class = counts.diagonal().double() / counts.sum(dim=1).clamp(min=1)
    print("accuracy per class:", " ".join(f"{k}:{v:.0%}" for k, v in enumerate(per_class.tolist())))
    off = counts.clone()
    off.fill_diagonal_(0)
    worst = torch.topk(off.reshape(-1), 3)
    for n, flat in zip(worst.values.tolist(), worst.indices.tolist()):
        if n:
            print(f"  a {flat // nb_classes} predicted as a {flat % nb_classes}: {n} time{'s' if n > 1 else ''}")
    fig, ax = plots.new_figure(size=(4.6, 4.2))
    capstone_plots.draw_confusion(ax, counts)
    display(fig)

# %% [markdown]
# ### 5.4 The mistakes themselves
#
# Looking at the misclassified images is the quickest way to tell a model's weakness from a data problem: some of these are ambiguous even to a person (at 8x8 pixels a 1 and a 7, or a 9 and a 5, can share most of their pixels), others are clear and show what the network has not learnt.

# %%
with needs("Capstone", "train_capstone", "evaluate"):
    wrong = (predicted_test != y_test).nonzero().reshape(-1)
    print(f"{len(wrong)} of {len(y_test)} test images misclassified; the first {min(len(wrong), 16)} (true -> predicted):")
    fig, axes = plots.new_figure(max(1, math.ceil(min(len(wrong), 16) / 8)), 8, size=(1.0, 1.2))
    capstone_plots.draw_misclassified(list(axes.reshape(-1)), x_test[wrong[:16]], y_test[wrong[:16]], predicted_test[wrong[:16]])
    display(fig)

# %% [markdown]
# ## 6. Against `torch.nn` and `torch.optim.Adam`
#
# The same network in built-in parts: `nn.Linear` layers with `nn.Tanh` between them, `F.cross_entropy`, and `torch.optim.Adam`, starting from **the same weights** and visiting **the same mini-batches** (a generator with the same seed). If your pieces are right, the two runs follow the same curve up to float32 rounding; the difference left is speed.

# %%
def builtin_twin(mine):
    """nn.Sequential with the same layer sizes and the same weights as a trained-or-not Capstone."""
    weights = [p for p in mine.parameters() if p.dim() == 2]
    biases = [p for p in mine.parameters() if p.dim() == 1]
    layers = []
    for i, (W, b) in enumerate(zip(weights, biases)):
        if i:
            layers.append(nn.Tanh())
        lin = nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            lin.weight.copy_(W)
            lin.bias.copy_(b)
        layers.append(lin)
    return nn.Sequential(*layers)


def train_builtin(net, x, y, nb_epochs, batch_size, lr, generator):
    """The same loop as train_capstone, in built-in parts: F.cross_entropy and torch.optim.Adam."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    means = []
    for _ in range(nb_epochs):
        order = torch.randperm(len(x), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            loss = F.cross_entropy(net(x[rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item(), count + 1
        means.append(total / count)
    return means


with needs("Capstone", "train_capstone", "evaluate"):
    twin = builtin_twin(init_model)
    start = time.perf_counter()
    builtin_losses = train_builtin(twin, x_train, y_train, NB_EPOCHS, BATCH, LR, torch.Generator().manual_seed(1))
    seconds_builtin = time.perf_counter() - start
    acc_builtin = evaluate(twin, x_test, y_test)
    gap = max(abs(a - b) for a, b in zip(train_losses, builtin_losses))
    print(f"{'':>22}{'time':>9}{'s/epoch':>9}{'test accuracy':>15}{'last loss':>11}")
    print(f"{'your framework':>22}{seconds_mine:>8.2f}s{seconds_mine / NB_EPOCHS:>9.3f}{acc_test:>15.2%}{train_losses[-1]:>11.4f}")
    print(f"{'torch.nn + optim.Adam':>22}{seconds_builtin:>8.2f}s{seconds_builtin / NB_EPOCHS:>9.3f}{acc_builtin:>15.2%}{builtin_losses[-1]:>11.4f}")
    print(f"largest difference between the two loss curves: {gap:.2e}; speed ratio {seconds_mine / seconds_builtin:.2f}x")
    fig, axes = plots.new_figure(1, 2, size=(4.6, 3.4))
    plots.loss_curves(axes[0, 0], {"your framework": train_losses, "torch.nn + torch.optim.Adam": builtin_losses}, xlabel="epoch")
    axes[0, 0].lines[1].set_linestyle("--")
    axes[0, 0].legend()  # again, so that the legend shows the dashes
    capstone_plots.draw_accuracy_bars(axes[0, 1], {"yours": acc_test, "torch": acc_builtin})
    display(fig)

# %% [markdown]
# The two curves lie on top of each other: the pieces you wrote compute the same function and the same update as PyTorch's. The differences that remain come from float32 rounding (a different order of additions), and over many steps they can move the last digits of the loss and, now and then, one test image across the decision boundary.
#
# Your framework is slower per step: every `LinearFunction`, `Tanh` and loss goes through Python twice (forward and backward) and `adam_step` builds several new tensors per parameter and per step (the new $m$, $v$ and weights), where `torch.optim.Adam` updates its buffers and the weights in place. On layers this small the overhead, not the arithmetic, is most of the time; on large matrices the gap shrinks because the matrix products dominate both.
#
# ### On MNIST
#
# Set `BACKPROPLAB_MNIST` to a folder holding the MNIST IDX files (for example `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz`, with or without the training files) and run the notebook again: `data.capstone_split` then returns MNIST, the official training and test sets when both are there, or the 10,000 test images split 8,000/2,000 when only they are. The network becomes `[784, 128, 10]`, trained 10 epochs with batches of 64. On the 8,000/2,000 split it reaches about 96% test accuracy (95.95% with the seeds above), 100% on the training images, in about 5 s per training run and under a minute for the whole notebook. The gap says 8,000 images are few for 784 inputs: the full 60,000-image training set is what brings an MLP like this past 97%.
#
# ## Summary
#
# * Check before you train: the initial loss near $\log K$, a tiny batch learnt by heart, a finite-difference spot check. Each costs seconds and each catches bugs that would otherwise only show as "it trains, but badly".
# * A training loop is a few lines once the pieces are right: shuffle with a generator, a loss per mini-batch, its gradients, one optimiser state per parameter kept for the whole run.
# * Measure more than the loss: the test accuracy, the confusion matrix and the misclassified examples say *what* the network gets wrong.
# * Compare with a reference implementation on the same weights and batches: equal curves are the strongest evidence that your pieces are right.
#
# ## Sources and further reading
#
# **Practice of training** (the checks of section 3 and the order of work):
#
# - Andrej Karpathy, "A Recipe for Training Neural Networks" (blog post, April 2019, <https://karpathy.github.io/2019/04/25/recipe/>): look at the data first; verify the loss at initialisation ("you should measure -log(1/n_classes)"); overfit one batch; add complexity only after each step works; look at the mistakes.
# - Stanford CS231n, *Convolutional Neural Networks for Visual Recognition*, course notes "Neural Networks Part 3: Learning and Evaluation" (<https://cs231n.github.io/neural-networks-3/>): gradient checks with centred differences in double precision, the expected loss at chance, overfitting a tiny subset of the data, reading loss curves and choosing the learning rate.
#
# **The lectures this course follows** (transcripts in the course's seed folder):
#
# - François Fleuret, *Deep Learning #3 – MLP, backprop, autograd*, IfI Summer School 2018 on Machine Learning (<http://fleuret.org/ifi/>): the MLP, its training loop on MNIST, autograd.
# - Rémy Sun, *Lecture 9: Backpropagation*, Optimization for data sciences, Université Côte d'Azur: the tanh network with a softmax output, its deltas $\hat y - y$, the batch dimension.
# - *Training Neural Networks*, course *Applied Deep Learning* (the transcript names no lecturer): the learning rate, automatic differentiation, writing your own PyTorch operator.
# - The EPFL recitation "Backpropagation, Automatic Differentiation & PyTorch, Deep Learning Building Blocks", *Mathematics of Data*, Prof. Volkan Cevher: the forward and backward schemes, cross-entropy as the sensible default loss for classification.
# - *Neural Network View of a Linear Classifier* (lecture slides; figures adapted from CS 231n): networks as building blocks, each with a known local derivative.
#
# **The pieces:**
#
# - Diederik Kingma and Jimmy Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (`adam_step`); Xavier Glorot and Yoshua Bengio, "Understanding the difficulty of training deep feedforward neural networks", AISTATS 2010 (`xavier_init`).
# - PyTorch documentation: "Extending PyTorch" (<https://pytorch.org/docs/stable/notes/extending.html>) for the `Function`s, and `torch.optim.Adam` (<https://pytorch.org/docs/stable/generated/torch.optim.Adam.html>) for the update it must match.
