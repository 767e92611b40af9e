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
# # Lab 2 — Gradient descent
#
# Training a network means finding parameters that make a loss small, and almost every method used
# in practice is a variation of one idea: look at the gradient, take a step against it, repeat. This
# lab takes that idea apart.
#
# You will build, in thirteen numbered exercises:
#
# 1. `numerical_gradient` (section 2), a finite-difference approximation that can check **any** gradient;
# 2. `local_quadratic_model` (section 3), the simple model of the loss whose minimiser *is* one gradient step;
# 3. `gradient_descent` (section 4), the update rule $w_{t+1} = w_t - \eta \nabla \mathcal{L}(w_t)$, iterated;
# 4. and 5. `quadratic_loss` and `quadratic_grad` (section 6), a problem on which everything can be
#    computed exactly;
# 6. to 8. `max_stable_step`, `best_constant_step` and `step_regime` (section 6), which predict from the
#    eigenvalues of a matrix whether a step size converges smoothly, oscillates or blows up;
# 9. `predicted_regime` (section 6), a prediction you make on paper before an experiment checks it;
# 10. `train_mlp_gd` (section 8), Fleuret's training loop: a small ReLU network that tells the digit
#     "5" from the others, with the update written by hand;
# 11. to 13. `momentum_descent`, `heavy_ball_rate` and `adam_step` (section 9): momentum, its rate, and
#     Adam's adaptive steps;
#
# and two written answers (section 10).
#
# Most of the lab follows François Fleuret's lecture *Deep Learning #3 – MLP, backprop, autograd* (IfI
# Summer School 2018); its thread: the gradient gives the local linear behaviour of the loss, a step minimises
# a quadratic model built on it, and the step size $\eta$ decides whether the iterates settle in a
# minimum (Fleuret's $\eta = 0.125$) or bounce around it ($\eta = 0.5$). Two other lectures are used
# where they are named, Rémy Sun's *Lecture 9: Backpropagation* and the *Applied Deep Learning* lecture
# *Training Neural Networks*; the sources are listed at the end.
#
# Run the cells from top to bottom. Each exercise is followed by a grade cell; hidden checks run on
# other inputs when the lab is graded.
#
# Only the exercise cells are graded: put any helper function you write inside the exercise's cell.

# %%
import math

import torch
from backproplab import checks, data, env, gd_checks, gd_figures, momentum_figures, needs, plots, widgets
from torch import nn

# %%
env.check_environment()
torch.set_num_threads(1)  # the tensors here are small: one thread is faster than several competing ones


# %% [markdown]
# ## 1. The gradient points uphill
#
# For a function $\mathcal{L} : \mathbb{R}^D \to \mathbb{R}$, the gradient
# $\nabla \mathcal{L}(w) = \left(\frac{\partial \mathcal{L}}{\partial w_1}(w), \dots, \frac{\partial \mathcal{L}}{\partial w_D}(w)\right)$
# collects the slopes along the coordinate axes. Its real meaning appears when you move in an
# arbitrary unit direction $u$: to first order,
#
# $$\mathcal{L}(w + t u) \approx \mathcal{L}(w) + t \, \nabla \mathcal{L}(w) \cdot u,$$
#
# so the slope in direction $u$ is $\nabla \mathcal{L}(w) \cdot u = \|\nabla \mathcal{L}(w)\| \cos \theta$,
# where $\theta$ is the angle between $u$ and the gradient. It is largest ($\|\nabla\mathcal{L}\|$) when
# $u$ points along the gradient, zero across it, and most negative straight against it. The gradient
# is the direction of **steepest ascent**; minus the gradient is the direction of steepest descent.
#
# The cell below measures the slope of a 2-D function in 72 directions with `torch.autograd` and
# compares it with $\|\nabla \mathcal{L}\| \cos\theta$.
#
# > **Autograd as a black box, for now.** This lab uses `torch.autograd` to get gradients it does not
# > want to write by hand: `torch.autograd.grad(loss, w)` returns $\partial\,\text{loss} / \partial w$ for a
# > tensor `w` created with `requires_grad=True`, and `loss.backward()` (section 8) stores the same
# > gradient in `w.grad` for every such tensor the loss depends on. Take both on trust here: you only
# > need to know *what* they return. *How* they compute it (backpropagation, a reverse sweep through
# > the computation) is labs 3 to 5; the finite differences of section 2 let you check them meanwhile.

# %%
def bowl_2d(w):
    return (w[0] - 1) ** 2 + 3 * (w[1] + 0.5) ** 2 + torch.sin(w[0] * w[1])


point = torch.tensor([-0.5, 0.8], dtype=torch.float64, requires_grad=True)
(grad_at_point,) = torch.autograd.grad(bowl_2d(point), point)
angles = torch.linspace(0, 2 * math.pi, 73, dtype=torch.float64)[:-1]
slopes = []
for angle in angles:
    u = torch.stack([torch.cos(angle), torch.sin(angle)])  # a unit direction
    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(bowl_2d(point.detach() + t * u), t)  # d/dt L(w + t u) at t = 0
    slopes.append(slope.item())
gradient_angle = math.atan2(grad_at_point[1].item(), grad_at_point[0].item()) % (2 * math.pi)

fig, ax = plots.new_figure(size=(6.0, 3.2))
ax.plot(angles.numpy(), slopes, "o", ms=3, label="measured slope along u")
ax.plot(angles.numpy(), (grad_at_point.norm() * torch.cos(angles - gradient_angle)).numpy(), lw=1,
        label=r"$\|\nabla L\|\cos\theta$")
ax.axvline(gradient_angle, color="red", ls="--", label="direction of the gradient")
ax.set_xlabel("direction of u (radians)")
ax.set_ylabel("slope")
ax.legend(fontsize=8)
print(f"largest slope {max(slopes):.4f}, norm of the gradient {grad_at_point.norm().item():.4f}")
fig


# %% [markdown]
# ## 2. Checking any gradient with finite differences
#
# Before trusting a gradient, compare it with one that needs nothing but evaluations of the function.
# Nudge coordinate $i$ by a small $\epsilon$ in both directions:
#
# $$\frac{\partial \mathcal{L}}{\partial w_i}(w) \approx \frac{\mathcal{L}(w + \epsilon e_i) - \mathcal{L}(w - \epsilon e_i)}{2 \epsilon},$$
#
# where $e_i$ is the $i$-th basis vector. This **central** difference is accurate to order
# $\epsilon^2$: the terms in $\epsilon^2$ of the two Taylor expansions cancel. The one-sided (forward)
# difference $(\mathcal{L}(w + \epsilon e_i) - \mathcal{L}(w)) / \epsilon$ is only accurate to order
# $\epsilon$. It costs $2D$ evaluations of $\mathcal{L}$, far too many to train a network with, but it is
# the referee we will use to check gradients written by hand.
#
# **Exercise 1.** Write `numerical_gradient(f, w, eps=1e-6)`: `f` maps a `(D,)` tensor to a scalar tensor;
# return the `(D,)` tensor of central differences, in `w`'s dtype, without changing `w`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "numerical_gradient", "locked": false, "schema_version": 3, "solution": true, "task": false}
def numerical_gradient(f, w, eps=1e-6):
    """g_i = (f(w + eps e_i) - f(w - eps e_i)) / (2 eps), for every coordinate i of the (D,) tensor w"""
    ### BEGIN SOLUTION
    grad = torch.empty_like(w)
    for i in range(w.numel()):
        nudge = torch.zeros_like(w)
        nudge[i] = eps
        grad[i] = (f(w + nudge) - f(w - nudge)) / (2 * eps)
    return grad
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_numerical_gradient", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# numerical_gradient: central differences that use eps as given and agree with autograd on smooth functions
w = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)


def cube_sum(v):
    return (v**3).sum()


# For a cube the central difference is known exactly: ((w + e)^3 - (w - e)^3) / (2 e) = 3 w^2 + e^2.
for eps in (0.5, 0.1):
    got = checks.call(numerical_gradient, cube_sum, w.clone(), eps)
    one_sided = [3 * w**2 + 3 * w * eps + eps**2, 3 * w**2 - 3 * w * eps + eps**2]
    if isinstance(got, torch.Tensor) and got.shape == w.shape and any(checks.close(got, d) for d in one_sided):
        raise AssertionError(
            f"numerical_gradient(cube_sum, w, eps={eps}) is a one-sided difference. Use the central "
            "difference (f(w + eps e_i) - f(w - eps e_i)) / (2 eps): its error is of order eps^2 "
            "instead of eps (diagnosis: forward_difference)"
        )
    checks.assert_close(got, 3 * w**2 + eps**2, name=f"numerical_gradient(cube_sum, w, eps={eps})",
                        magnitude=gd_checks.difference_magnitude(cube_sum(w), w, 3 * w**2, eps))

M = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]], dtype=torch.float64)


def smooth(v):
    return torch.log(torch.cosh(M @ v)).sum() + 20 * (v**2).sum()


x = w.clone().requires_grad_(True)
(expected,) = torch.autograd.grad(smooth(x), x)
got = checks.call(numerical_gradient, smooth, w.clone())
checks.assert_close(got, expected, name="numerical_gradient(smooth, w) with the default eps",
                    magnitude=gd_checks.difference_magnitude(smooth(w), w, expected, 1e-6))
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(20)
for d in (1, 2, 5, 8):
    B = torch.randn(d + 1, d, generator=gen, dtype=torch.float64)
    c = torch.randn(d, generator=gen, dtype=torch.float64)
    point = torch.randn(d, generator=gen, dtype=torch.float64)

    def hidden_f(v, B=B, c=c):
        return torch.logsumexp(B @ v, 0) + 3 * torch.sin(c @ v) + 10 * (v**2).sum()

    x = point.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(hidden_f(x), x)
    got = checks.call(numerical_gradient, hidden_f, point.clone())
    checks.assert_close(got, expected, name=f"numerical_gradient with D={d}",
                        magnitude=gd_checks.difference_magnitude(hidden_f(point), point, expected, 1e-6))
    got = checks.call(numerical_gradient, cube_sum, point.clone(), 0.25)
    checks.assert_close(got, 3 * point**2 + 0.0625, name=f"numerical_gradient(cube_sum, w, eps=0.25) with D={d}",
                        magnitude=gd_checks.difference_magnitude(cube_sum(point), point, 3 * point**2, 0.25))
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_numerical_gradient_inputs", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# numerical_gradient: keeps the dtype of w (float32 and float64), returns shape (D,), leaves w unchanged
w = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=torch.float64)
before = w.clone()
def squares(v):
    return (v**2).sum()


got = checks.call(numerical_gradient, squares, w)
checks.assert_close(got, 2 * before, name="numerical_gradient(sum of squares, w)",
                    magnitude=gd_checks.difference_magnitude(squares(before), before, 2 * before, 1e-6))
if not checks.close(w, before):  # a w put back by w[i] += eps ... w[i] -= eps is off by an ulp at most
    raise AssertionError(
        "numerical_gradient changed its input w: nudge a copy (w + nudge) or put every entry back "
        "exactly as it was (diagnosis: modified_input)"
    )
w32 = before.to(torch.float32)
got = checks.call(numerical_gradient, squares, w32, 1e-2)
checks.assert_close(got, 2 * w32, name="numerical_gradient in float32 (eps=1e-2)", dtype=torch.float32,
                    magnitude=gd_checks.difference_magnitude(squares(w32), w32, 2 * w32, 1e-2))
### BEGIN HIDDEN TESTS
one = torch.tensor([0.7], dtype=torch.float64)
got = checks.call(numerical_gradient, lambda v: torch.exp(v).sum(), one.clone())
checks.assert_close(got, torch.exp(one), name="numerical_gradient with D=1",
                    magnitude=gd_checks.difference_magnitude(torch.exp(one).sum(), one, torch.exp(one), 1e-6))
w32 = torch.tensor([1.5, -0.5], dtype=torch.float32)
kept = w32.clone()


def coupled(v):
    return (v**2).sum() + v[0] * v[1]


got = checks.call(numerical_gradient, coupled, w32, 1e-2)
want = torch.stack([2 * kept[0] + kept[1], 2 * kept[1] + kept[0]])
checks.assert_close(got, want, name="numerical_gradient in float32", dtype=torch.float32,
                    magnitude=gd_checks.difference_magnitude(coupled(kept), kept, want, 1e-2))
if not checks.close(w32, kept, torch.float32):
    raise AssertionError("numerical_gradient changed its float32 input w (diagnosis: modified_input)")
### END HIDDEN TESTS

# %% [markdown]
# How small should $\epsilon$ be? Two errors compete. The approximation error shrinks like $\epsilon^2$
# (central) or $\epsilon$ (forward), but the rounding error of the subtraction grows like
# $\text{(machine precision)} / \epsilon$: two nearly equal numbers are subtracted and the difference
# is divided by a tiny number. The plot shows both effects in float64 on $\mathcal{L}(w) = \sum_i \sin(3 w_i)$,
# whose gradient we know exactly.

# %%
with needs("numerical_gradient"):
    w_probe = torch.tensor([0.4, -1.1, 0.9], dtype=torch.float64)
    exact = 3 * torch.cos(3 * w_probe)
    epsilons = [10.0**-k for k in range(1, 13)]
    central_errors, forward_errors = [], []
    for eps in epsilons:
        central = numerical_gradient(lambda v: torch.sin(3 * v).sum(), w_probe, eps)
        forward = torch.stack([  # one-sided differences, written out for the comparison
            (torch.sin(3 * (w_probe + eps * e)).sum() - torch.sin(3 * w_probe).sum()) / eps
            for e in torch.eye(3, dtype=torch.float64)
        ])
        central_errors.append((central - exact).abs().max().item())
        forward_errors.append((forward - exact).abs().max().item())
    fig, ax = plots.new_figure(size=(5.5, 3.4))
    ax.loglog(epsilons, central_errors, "o-", label="central difference")
    ax.loglog(epsilons, forward_errors, "s-", label="forward difference")
    ax.set_xlabel("eps")
    ax.set_ylabel("largest error")
    ax.grid(alpha=0.3)
    ax.legend()
    best = epsilons[min(range(len(epsilons)), key=central_errors.__getitem__)]
    print(f"central differences are most accurate around eps = {best:g}")
    display(fig)


# %% [markdown]
# The central difference reaches about $10^{-10}$ near $\epsilon \approx 10^{-5}$ to $10^{-6}$; the forward
# difference never does better than about $10^{-8}$. In float32 (seven significant digits) the same
# trade-off puts the best $\epsilon$ near $10^{-2}$ to $10^{-3}$, with errors around $10^{-4}$: gradient
# checks are done in float64.
#
# ## 3. One step minimises a local model
#
# Near a point $w_0$, the gradient tells us how $\mathcal{L}$ behaves to first order. A linear model
# alone has no minimum, so Fleuret's lecture adds a quadratic term that says "do not trust me far from
# $w_0$":
#
# $$\tilde{\mathcal{L}}_{w_0}(w) = \mathcal{L}(w_0) + \nabla \mathcal{L}(w_0) \cdot (w - w_0) + \frac{1}{2\eta}\|w - w_0\|^2 .$$
#
# The quadratic term does not depend on $\mathcal{L}$: $\eta$ sets how tightly the model hugs $w_0$.
# Its **curvature** (second derivative along any direction) is $1/\eta$: the factor $\frac{1}{2\eta}$
# in front of $\|w - w_0\|^2$ is halved by the square, as $\frac{c}{2} x^2$ has second derivative $c$.
# Its gradient is $\nabla \mathcal{L}(w_0) + (w - w_0)/\eta$, which vanishes at
#
# $$\operatorname*{argmin}_w \tilde{\mathcal{L}}_{w_0}(w) = w_0 - \eta \nabla \mathcal{L}(w_0).$$
#
# So one step of gradient descent jumps to the bottom of this bowl. Whether that is a good move depends
# on whether the bowl sits above the true function (a safe step) or dips below it (an overshoot).
#
# This is the **descent lemma**. If the loss is $L$-smooth (its curvature is at most $L$ in every
# direction, the assumption under which Rémy Sun's lecture says gradient descent converges), then
# $\mathcal{L}(w) \le \mathcal{L}(w_0) + \nabla\mathcal{L}(w_0)\cdot(w - w_0) + \frac{L}{2}\|w - w_0\|^2$. With
# $\eta \le 1/L$ the model's curvature $1/\eta$ is at least $L$, so the bowl lies above the loss everywhere,
# and the step lands at least as low as the bottom of the bowl:
#
# $$\mathcal{L}(w_0 - \eta\nabla\mathcal{L}(w_0)) \le \mathcal{L}(w_0) - \frac{\eta}{2}\|\nabla\mathcal{L}(w_0)\|^2 \qquad (\eta \le 1/L).$$
#
# Every step with $\eta \le 1/L$ decreases the loss, by an amount that is zero only where the gradient is.
#
# **Exercise 2.** Write `local_quadratic_model(loss_fn, w0, eta)`. `loss_fn` maps a `(D,)` tensor to a scalar
# tensor; get $\mathcal{L}(w_0)$ and $\nabla \mathcal{L}(w_0)$ with `torch.autograd` (on a copy of `w0`
# that requires grad), then return a **function** `m` with `m(w)` $= \tilde{\mathcal{L}}_{w_0}(w)$, a
# scalar tensor.

# %% deletable=false nbgrader={"grade": false, "grade_id": "local_quadratic_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
def local_quadratic_model(loss_fn, w0, eta):
    """m(w) = L(w0) + grad L(w0) . (w - w0) + ||w - w0||^2 / (2 eta); returns the function m"""
    ### BEGIN SOLUTION
    with torch.enable_grad():
        anchor = w0.detach().clone().requires_grad_(True)
        loss_at_anchor = loss_fn(anchor)
        (slope,) = torch.autograd.grad(loss_at_anchor, anchor)
    loss_at_anchor = loss_at_anchor.detach()
    anchor = anchor.detach()

    def model(w):
        step = w - anchor
        return loss_at_anchor + slope @ step + (step * step).sum() / (2 * eta)

    return model
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_local_quadratic_model", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# local_quadratic_model: m(w0) = L(w0), the slope of m at w0 is grad L(w0), and m is lowest at w0 - eta * grad L(w0)


def wiggly_loss(v):
    return (v**4).sum() / 4 + torch.sin(v).prod() + v[0] * v[-1]


def check_local_model(loss_fn, w0, eta, label):
    w0_before = w0.clone()
    x = w0.detach().clone().to(torch.float64).requires_grad_(True)
    loss0 = loss_fn(x)
    (grad0,) = torch.autograd.grad(loss0, x)
    m = checks.call(local_quadratic_model, loss_fn, w0, eta)
    if not callable(m):
        raise AssertionError(
            f"local_quadratic_model{label} returned a {type(m).__name__}; it must return a function m "
            "that takes a (D,) tensor w and returns the value of the model (diagnosis: not_callable)"
        )
    if not torch.equal(w0, w0_before):
        raise AssertionError(f"local_quadratic_model{label} changed w0; work on a copy (diagnosis: modified_input)")

    def value(v):
        out = checks.call(m, v.to(w0.dtype), name="the function m returned by local_quadratic_model")
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            return float(out.detach().reshape(()))
        if isinstance(out, float):
            return out
        raise AssertionError(
            f"m(w) must return a scalar tensor, got {type(out).__name__}"
            + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else "")
            + " (diagnosis: wrong_shape)"
        )

    # m is evaluated in w0's dtype: the rule for that dtype
    checks.assert_python_float(value(w0), loss0.item(), name=f"m(w0){label}, which must equal L(w0)", dtype=w0.dtype)
    h = 1e-3 if w0.dtype == torch.float64 else 1e-1
    eye = torch.eye(len(w0), dtype=torch.float64)
    w0_64 = w0.detach().to(torch.float64)
    ups, downs = [value(w0_64 + h * e) for e in eye], [value(w0_64 - h * e) for e in eye]
    # m is quadratic, so its central difference is exact but for rounding: kept in m's dtype, with the
    # magnitude of a central difference of m
    slope = torch.tensor([(up - down) / (2 * h) for up, down in zip(ups, downs, strict=True)], dtype=w0.dtype)
    checks.assert_close(slope, grad0, name=f"slope of m at w0{label} (it must equal grad L(w0))", dtype=w0.dtype,
                        magnitude=gd_checks.difference_magnitude(max(map(abs, ups + downs)), w0_64, grad0, h))
    target = w0_64 - eta * grad0
    bottom = value(target)
    gen = torch.Generator().manual_seed(7)
    for u in [0.5 * e for e in eye] + [torch.randn(len(w0), generator=gen, dtype=torch.float64) for _ in range(2)]:
        rise = value(target + u) - bottom
        want = (u * u).sum().item() / (2 * eta)
        # m rounds its value, the rise, and the point target + u itself (|w| times m's slope u / eta there)
        terms = abs(bottom) + want + float((target + u).abs().max() * u.abs().max()) / eta
        if not checks.close(rise, want, w0.dtype, magnitude=terms):
            raise AssertionError(
                f"m{label} should rise by ||u||^2 / (2 eta) = {want:.6g} from its lowest point "
                f"w0 - eta * grad L(w0) to that point plus u, but it rises by {rise:.6g}: the quadratic "
                "term ||w - w0||^2 / (2 eta) is wrong, so one gradient step does not minimise the model "
                "(diagnosis: local_model_curvature)"
            )


check_local_model(wiggly_loss, torch.tensor([0.7, -0.4, 1.1], dtype=torch.float64), 0.2, "")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(31)
for d, eta in ((1, 0.05), (4, 0.7), (2, 1.5)):
    Q = torch.randn(d, d, generator=gen, dtype=torch.float64)
    point = torch.randn(d, generator=gen, dtype=torch.float64)

    def hidden_loss(v, Q=Q):
        return torch.logsumexp(Q @ v, 0) + (v**2).sum() * torch.cos(v.sum())

    check_local_model(hidden_loss, point, eta, f" (D={d}, eta={eta})")
check_local_model(wiggly_loss, torch.tensor([0.3, 1.2], dtype=torch.float32), 0.5, " (float32 w0)")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. The update rule, iterated
#
# Repeating the step from wherever we land gives gradient descent:
#
# $$w_{t+1} = w_t - \eta \nabla \mathcal{L}(w_t).$$
#
# It follows the steepest descent locally and finds a **local** minimum; where it ends and how fast
# depend on the start $w_0$ and the step size $\eta$ ("step size or learning rate", as the *Applied Deep
# Learning* lecture *Training Neural Networks* puts it).
#
# **Exercise 3.** Write `gradient_descent(grad_fn, w0, eta, nb_steps)`: `grad_fn` maps a `(D,)` tensor to the
# `(D,)` gradient at that point. Return a `(nb_steps + 1, D)` tensor of all the iterates, `w0` first, in
# `w0`'s dtype; do not change `w0`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "gradient_descent", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gradient_descent(grad_fn, w0, eta, nb_steps):
    """w[t+1] = w[t] - eta * grad_fn(w[t]); returns the (nb_steps + 1, D) tensor of iterates, w[0] = w0"""
    ### BEGIN SOLUTION
    iterates = torch.empty(nb_steps + 1, w0.numel(), dtype=w0.dtype, device=w0.device)
    iterates[0] = w0
    for t in range(nb_steps):
        iterates[t + 1] = iterates[t] - eta * grad_fn(iterates[t].clone())
    return iterates
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_gradient_descent", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# gradient_descent: every iterate, w0 first, each one step w - eta * grad_fn(w) from the previous one


def check_descent(grad_fn, w0, eta, nb_steps, expected, label):
    got = checks.call(gradient_descent, grad_fn, w0.clone(), eta, nb_steps)
    name = f"gradient_descent{label}"
    if isinstance(got, torch.Tensor):
        d = w0.numel()
        if got.shape == w0.shape and nb_steps > 0:
            raise AssertionError(
                f"{name} returned one vector of shape {tuple(got.shape)}: return every iterate, stacked "
                f"into a ({nb_steps + 1}, {d}) tensor whose row 0 is w0 (diagnosis: last_only)"
            )
        if tuple(got.shape) == (nb_steps, d):
            raise AssertionError(
                f"{name} returned {nb_steps} rows: the result has nb_steps + 1 = {nb_steps + 1} rows, "
                "starting with w0 itself (diagnosis: missing_w0)"
            )
        if got.shape == expected.shape and nb_steps > 1 and bool((got == got[-1]).all()):
            raise AssertionError(
                f"{name}: every row is the same vector. The list probably holds the same tensor several "
                "times while it is updated in place; store a copy (w.clone()) or compute a new tensor "
                "at each step (diagnosis: aliasing)"
            )
    checks.assert_close(got, expected, name=name, steps=nb_steps)  # rounding compounds over the iterates


target = torch.tensor([1.0, -2.0], dtype=torch.float64)
calls = []


def pull_to_target(w):  # the gradient of 0.5 * ||w - target||^2, recording where it is asked for
    calls.append(w.detach().clone())
    return w - target


w0 = torch.tensor([3.0, 0.5], dtype=torch.float64)
eta, nb_steps = 0.25, 6
t = torch.arange(nb_steps + 1, dtype=torch.float64)[:, None]
expected = target + (1 - eta) ** t * (w0 - target)  # the distance to the target shrinks by 1 - eta per step
got = checks.call(gradient_descent, pull_to_target, w0.clone(), eta, nb_steps)
if isinstance(got, torch.Tensor) and got.shape == expected.shape and checks.close(
    got, target + (1 + eta) ** t * (w0 - target), steps=nb_steps
):
    raise AssertionError(
        "gradient_descent moves uphill: it adds eta * grad_fn(w); subtract it (diagnosis: sign)"
    )
if len(calls) < nb_steps:
    raise AssertionError(
        f"gradient_descent called grad_fn {len(calls)} times for nb_steps={nb_steps}; each step needs the "
        "gradient at the current iterate (diagnosis: values)"
    )
check_descent(pull_to_target, w0, eta, nb_steps, expected, "(pull_to_target, w0, eta=0.25, nb_steps=6)")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(42)
for d, eta, nb_steps in ((1, 0.3, 5), (3, 0.1, 12), (5, 0.05, 20), (2, 1.7, 3)):
    M = torch.randn(d, d, generator=gen, dtype=torch.float64)
    c = torch.randn(d, generator=gen, dtype=torch.float64)

    def hidden_grad(w, M=M, c=c):
        return torch.sin(M @ w) + 0.5 * w - c

    point = torch.randn(d, generator=gen, dtype=torch.float64)
    rows = [point.clone()]
    for _ in range(nb_steps):
        rows.append(rows[-1] - eta * hidden_grad(rows[-1]))
    check_descent(hidden_grad, point, eta, nb_steps, torch.stack(rows), f" (D={d}, eta={eta}, nb_steps={nb_steps})")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_gradient_descent_inputs", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# gradient_descent: keeps w0's dtype, leaves w0 unchanged, row 0 is exactly w0, and nb_steps = 0 gives just w0
for dtype in (torch.float32, torch.float64):
    w0 = torch.tensor([0.5, -1.5, 2.0], dtype=dtype)
    before = w0.clone()
    got = checks.call(gradient_descent, lambda w: 2 * w, w0, 0.1, 3)
    factors = torch.tensor([1.0, 0.8, 0.64, 0.512], dtype=torch.float64)[:, None]
    checks.assert_close(got, factors * before.to(torch.float64), name=f"gradient_descent on 0.5 * 2 ||w||^2 ({dtype})",
                        dtype=dtype, steps=3)
    if not torch.equal(w0, before):
        raise AssertionError(
            "gradient_descent changed w0: an in-place update (w -= ...) on w0 itself modifies the caller's "
            "tensor; start from w0.clone() (diagnosis: modified_input)"
        )
    if not torch.equal(got[0], before):
        raise AssertionError("gradient_descent: row 0 must be exactly w0 (diagnosis: missing_w0)")
    none = checks.call(gradient_descent, lambda w: 2 * w, w0, 0.1, 0)
    checks.assert_close(none, before[None, :], name=f"gradient_descent with nb_steps=0 ({dtype})", dtype=dtype)
### BEGIN HIDDEN TESTS
one = torch.tensor([4.0], dtype=torch.float64)
got = checks.call(gradient_descent, lambda w: w - 1, one.clone(), 0.5, 4)
checks.assert_close(got, torch.tensor([[4.0], [2.5], [1.75], [1.375], [1.1875]], dtype=torch.float64),
                    name="gradient_descent with D=1", steps=4)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. A wavy bowl and two step sizes
#
# Here is the lab's 1-D non-convex function, $f(w) = w^2/4 + \sin(2w)$. Its global minimum lies near
# $w \approx -0.70$ and has curvature $f''(w) = 1/2 - 4\sin(2w) \approx 4.44$ there. We start at
# $w_0 = -2.5$ and compare the two step sizes of Fleuret's lecture. Each thin blue parabola is the local model
# $\tilde f_{w_t}$ built by **your** `local_quadratic_model` at the iterate $w_t$; its lowest point is
# the next iterate.

# %%
def wavy_grad(w):
    x = w.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(gd_figures.wavy_bowl(x).sum(), x)
    return g


with needs("gradient_descent", "local_quadratic_model"):
    start = torch.tensor([gd_figures.WAVY_BOWL_START], dtype=torch.float64)
    fig, axes = plots.new_figure(1, 2, size=(5.0, 3.6))
    for ax, eta in zip(axes[0], (0.125, 0.5), strict=True):
        path = gradient_descent(wavy_grad, start, eta, 12)
        models = gd_figures.parabolas_from_model(local_quadratic_model, gd_figures.wavy_bowl, path[:-1, 0].tolist(), eta)
        gd_figures.draw_descent_1d(ax, gd_figures.wavy_bowl, path, models, title=f"eta = {eta}")
        print(f"eta = {eta}: " + " ".join(f"{v:.3f}" for v in path[:, 0].tolist()))
    display(fig)

# %% [markdown]
# With $\eta = 0.125$ the models are narrow bowls: their curvature $1/\eta = 8$ is larger than the
# function's anywhere on the way ($f'' = 1/2 - 4\sin(2w)$ never exceeds 4.5), so by the descent lemma
# every step is a safe one, and the iterates slide into the minimum. With $\eta = 0.5$ the models are
# wide (curvature $1/\eta = 2$, below the $4.44$ of the minimum): they dip below the real function and
# each step overshoots. Near the minimum the multiplier of the error, $1 - \eta f'' \approx 1 - 0.5 \times 4.44 = -1.22$,
# is larger than 1 in size, so the minimum repels the iterates; they end up jumping back and forth
# between $w \approx -1.06$ and $w \approx -0.27$ forever, never settling. Section 6 makes this exact.
#
# Explore it yourself: change the step size, the start point and the number of steps. Try a start
# to the right of the bump at $w \approx 0.9$, and step sizes between 0.4 and 0.5: near
# $2 / 4.44 \approx 0.45$ the iterates stop settling in the global minimum.

# %%
explorer = widgets.gd.explorer_1d(gradient_descent, local_model=local_quadratic_model)
explorer


# %% [markdown]
# ## 6. Quadratics: where everything can be computed
#
# Close to a minimum, a smooth loss looks like a quadratic, so quadratics tell us what step sizes do.
# Take a symmetric positive definite matrix $A$ and
#
# $$\mathcal{L}(w) = \tfrac12 w^\top A w - b^\top w, \qquad \nabla \mathcal{L}(w) = A w - b,$$
#
# minimised at $w^\star = A^{-1} b$. (The gradient of $\tfrac12 w^\top A w$ is $\tfrac12 (A + A^\top) w$,
# which is $A w$ because $A$ is symmetric.)
#
# **Exercises 4 and 5.** Write `quadratic_loss(w, A, b)`, a scalar tensor, and `quadratic_grad(w, A, b)`, its
# gradient written by hand (no autograd), both in the dtype of the inputs.

# %% deletable=false nbgrader={"grade": false, "grade_id": "quadratic_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def quadratic_loss(w, A, b):
    """L(w) = 0.5 * w^T A w - b^T w, a scalar tensor"""
    ### BEGIN SOLUTION
    return 0.5 * (w @ A @ w) - b @ w
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_quadratic_loss", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# quadratic_loss: the scalar 0.5 * w^T A w - b^T w
A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
b = torch.tensor([1.0, -1.0], dtype=torch.float64)
w = torch.tensor([0.5, 2.0], dtype=torch.float64)
# w^T A w = 3 * 0.25 + 2 * (1 * 0.5 * 2) + 2 * 4 = 10.75 and b^T w = -1.5
checks.assert_close(checks.call(quadratic_loss, w, A, b), torch.tensor(0.5 * 10.75 + 1.5, dtype=torch.float64),
                    name="quadratic_loss(w, A, b)")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(5)
for d in (1, 3, 6):
    R = torch.randn(d, d, generator=gen, dtype=torch.float64)
    A = R @ R.T + torch.eye(d, dtype=torch.float64)
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    expected = 0.5 * torch.einsum("i,ij,j->", w, A, w) - torch.einsum("i,i->", b, w)
    checks.assert_close(checks.call(quadratic_loss, w, A, b), expected, name=f"quadratic_loss with D={d}")
    checks.assert_close(checks.call(quadratic_loss, w.float(), A.float(), b.float()), expected,
                        name=f"quadratic_loss in float32 with D={d}", dtype=torch.float32)
### END HIDDEN TESTS

# %% deletable=false nbgrader={"grade": false, "grade_id": "quadratic_grad", "locked": false, "schema_version": 3, "solution": true, "task": false}
def quadratic_grad(w, A, b):
    """grad L(w) = A w - b (A symmetric), written by hand"""
    ### BEGIN SOLUTION
    return A @ w - b
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_quadratic_grad", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# quadratic_grad: the gradient of 0.5 * w^T A w - b^T w, compared with torch.autograd


def check_quadratic_grad(w, A, b, label):
    x = w.detach().clone().to(torch.float64).requires_grad_(True)
    A64, b64 = A.to(torch.float64), b.to(torch.float64)
    (expected,) = torch.autograd.grad(0.5 * torch.einsum("i,ij,j->", x, A64, x) - b64 @ x, x)
    checks.assert_close(checks.call(quadratic_grad, w, A, b), expected, name=f"quadratic_grad{label}", dtype=w.dtype)


check_quadratic_grad(torch.tensor([0.5, 2.0], dtype=torch.float64),
                     torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64),
                     torch.tensor([1.0, -1.0], dtype=torch.float64), "(w, A, b) with a 2x2 A")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(6)
for d in (1, 4, 7):
    R = torch.randn(d, d, generator=gen, dtype=torch.float64)
    A = R @ R.T + 0.1 * torch.eye(d, dtype=torch.float64)
    b = torch.randn(d, generator=gen, dtype=torch.float64)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    check_quadratic_grad(w, A, b, f" with D={d}")
    check_quadratic_grad(w.float(), A.float(), b.float(), f" in float32 with D={d}")
### END HIDDEN TESTS

# %% [markdown]
# Finite differences check a gradient written by hand: here is yours against `numerical_gradient` on a
# random 5-dimensional quadratic, in float64.

# %%
with needs("quadratic_loss", "quadratic_grad", "numerical_gradient"):
    gen = torch.Generator().manual_seed(0)
    R = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    A5, b5 = R @ R.T + torch.eye(5, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64)
    w5 = torch.randn(5, generator=gen, dtype=torch.float64)
    by_hand = quadratic_grad(w5, A5, b5)
    by_differences = numerical_gradient(lambda v: quadratic_loss(v, A5, b5), w5)
    print("by hand:           ", [round(v, 6) for v in by_hand.tolist()])
    print("finite differences:", [round(v, 6) for v in by_differences.tolist()])
    print(f"largest difference: {(by_hand - by_differences).abs().max().item():.2e}")


# %% [markdown]
# ### Each eigen-direction on its own
#
# Write the error as $e_t = w_t - w^\star$. Because $A w^\star = b$, one step gives
#
# $$e_{t+1} = e_t - \eta (A w_t - b) = e_t - \eta A e_t = (I - \eta A)\, e_t .$$
#
# Diagonalise $A = Q \Lambda Q^\top$ with orthonormal eigenvectors $q_i$ and eigenvalues $\lambda_i > 0$. In
# those coordinates the directions do not interact: the component of the error along $q_i$ is
# **multiplied by $1 - \eta \lambda_i$ at every step**. So each direction is in one of three regimes:
#
# | factor $1 - \eta\lambda_i$ | what the component does |
# | --- | --- |
# | between 0 and 1 ($\eta \le 1/\lambda_i$) | shrinks, keeping its sign: **monotone** |
# | between -1 and 0 ($1/\lambda_i < \eta < 2/\lambda_i$) | shrinks, flipping sign every step: **oscillating** |
# | $\le -1$ ($\eta \ge 2/\lambda_i$) | never shrinks: **divergent** (exactly -1 bounces forever) |
#
# The whole error shrinks at the rate of the worst direction, $\rho(\eta) = \max_i |1 - \eta\lambda_i|$,
# which involves only $\lambda_{\min}$ and $\lambda_{\max}$. Three consequences:
#
# * the iterates converge for every start only if $\eta < 2 / \lambda_{\max}$: the steepest direction
#   limits the step;
# * the best constant step balances the two extremes, $1 - \eta\lambda_{\min} = -(1 - \eta\lambda_{\max})$,
#   which gives $\eta^\star = 2 / (\lambda_{\min} + \lambda_{\max})$;
# * at that step the rate is $\rho^\star = \frac{\lambda_{\max} - \lambda_{\min}}{\lambda_{\max} + \lambda_{\min}} = \frac{\kappa - 1}{\kappa + 1}$,
#   where $\kappa = \lambda_{\max} / \lambda_{\min}$ is the **condition number**. Nothing but $\kappa$ matters.
#
# **Exercises 6, 7 and 8.** For a symmetric positive definite `A` (use `torch.linalg.eigvalsh`):
#
# * 6. `max_stable_step(A)`: the Python float $2 / \lambda_{\max}$;
# * 7. `best_constant_step(A)`: the Python float $2 / (\lambda_{\min} + \lambda_{\max})$;
# * 8. `step_regime(A, eta)`: `'divergent'` if $\max_i |1 - \eta\lambda_i| \ge 1$, else `'oscillating'` if some
#   $1 - \eta\lambda_i < 0$, else `'monotone'`. Note the borders: at $\eta = 2/\lambda_{\max}$ the factor is
#   exactly $-1$ and the run is divergent; at $\eta = 1/\lambda_{\max}$ it is exactly 0, which is not
#   negative, so the run is monotone.

# %% deletable=false nbgrader={"grade": false, "grade_id": "max_stable_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def max_stable_step(A):
    """2 / lambda_max(A), a Python float"""
    ### BEGIN SOLUTION
    eigenvalues = torch.linalg.eigvalsh(A)
    return 2.0 / eigenvalues.max().item()
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_max_stable_step", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# max_stable_step: the Python float 2 / lambda_max, on matrices whose eigenvalues are known


def check_max_step(A, lam_min, lam_max, label):
    got = checks.call(max_stable_step, A)
    if isinstance(got, float) and checks.close(got, 1 / lam_max, A.dtype):
        raise AssertionError(
            f"max_stable_step{label} returned 1 / lambda_max = {got}: that is where oscillations start; "
            "the iterates still converge up to 2 / lambda_max (diagnosis: scaled)"
        )
    if isinstance(got, float) and lam_min != lam_max and checks.close(got, 2 / lam_min, A.dtype):
        raise AssertionError(
            f"max_stable_step{label} used the smallest eigenvalue; the largest one limits the step "
            "(diagnosis: lambda_min)"
        )
    checks.assert_python_float(got, 2 / lam_max, name=f"max_stable_step{label}", dtype=A.dtype)  # eigenvalues in A's dtype


check_max_step(torch.diag(torch.tensor([0.5, 4.0, 1.0], dtype=torch.float64)), 0.5, 4.0, "(diag(0.5, 4, 1))")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(11)
for d in (1, 2, 5):
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    lams = 2.0 ** torch.randint(-4, 5, (d,), generator=gen).to(torch.float64)
    A = Q @ torch.diag(lams) @ Q.T
    A = (A + A.T) / 2
    check_max_step(A, lams.min().item(), lams.max().item(), f" on a random {d}x{d} matrix")
check_max_step(torch.diag(torch.tensor([8.0, 0.125], dtype=torch.float32)), 0.125, 8.0, " on a float32 matrix")
### END HIDDEN TESTS

# %% deletable=false nbgrader={"grade": false, "grade_id": "best_constant_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def best_constant_step(A):
    """2 / (lambda_min(A) + lambda_max(A)), a Python float"""
    ### BEGIN SOLUTION
    eigenvalues = torch.linalg.eigvalsh(A)  # in ascending order
    return 2.0 / (eigenvalues[0] + eigenvalues[-1]).item()
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_best_constant_step", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# best_constant_step: the Python float 2 / (lambda_min + lambda_max), on matrices whose eigenvalues are known


def check_best_step(A, lam_min, lam_max, label):
    got = checks.call(best_constant_step, A)
    if isinstance(got, float) and checks.close(got, 1 / (lam_min + lam_max), A.dtype):
        raise AssertionError(
            f"best_constant_step{label} returned 1 / (lambda_min + lambda_max); the balance "
            "1 - eta * lambda_min = eta * lambda_max - 1 gives 2 / (lambda_min + lambda_max) (diagnosis: scaled)"
        )
    checks.assert_python_float(got, 2 / (lam_min + lam_max), name=f"best_constant_step{label}", dtype=A.dtype)


check_best_step(torch.diag(torch.tensor([0.5, 4.0, 1.0], dtype=torch.float64)), 0.5, 4.0, "(diag(0.5, 4, 1))")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(12)
for d in (1, 2, 6):
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    lams = 2.0 ** torch.randint(-4, 5, (d,), generator=gen).to(torch.float64)
    A = Q @ torch.diag(lams) @ Q.T
    A = (A + A.T) / 2
    check_best_step(A, lams.min().item(), lams.max().item(), f" on a random {d}x{d} matrix")
check_best_step(torch.diag(torch.tensor([8.0, 0.125], dtype=torch.float32)), 0.125, 8.0, " on a float32 matrix")
### END HIDDEN TESTS

# %% deletable=false nbgrader={"grade": false, "grade_id": "step_regime", "locked": false, "schema_version": 3, "solution": true, "task": false}
def step_regime(A, eta):
    """'divergent' if max |1 - eta lambda_i| >= 1, else 'oscillating' if some 1 - eta lambda_i < 0, else 'monotone'"""
    ### BEGIN SOLUTION
    factors = 1 - eta * torch.linalg.eigvalsh(A)
    if factors.abs().max() >= 1:
        return "divergent"
    if (factors < 0).any():
        return "oscillating"
    return "monotone"
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_step_regime", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# step_regime: the regime named from the factors 1 - eta * lambda_i, including the two borders


def check_regime(A, eta, expected, why, label, border=False):
    got = checks.call(step_regime, A, eta)
    if not isinstance(got, str):
        raise AssertionError(
            f"step_regime{label} must return one of the strings 'monotone', 'oscillating', 'divergent'; "
            f"got {type(got).__name__} {got!r} (diagnosis: wrong_dtype)"
        )
    if got != expected:
        raise AssertionError(
            f"step_regime{label} with eta={eta}: expected {expected!r}, got {got!r}. {why} "
            f"(diagnosis: {'border' if border else 'values'})"
        )


A = torch.diag(torch.tensor([0.25, 1.0, 4.0], dtype=torch.float64))
label = "(diag(0.25, 1, 4), eta)"
check_regime(A, 0.125, "monotone", "Every factor 1 - eta * lambda is between 0 and 1.", label)
check_regime(A, 0.375, "oscillating", "1 - 0.375 * 4 = -0.5 is negative but smaller than 1 in size.", label)
check_regime(A, 0.75, "divergent", "1 - 0.75 * 4 = -2: that direction grows.", label)
check_regime(A, 0.5, "divergent", "At eta = 2 / lambda_max the factor 1 - eta * lambda_max is exactly -1: "
             "that component never shrinks, and the rule says |factor| >= 1 is divergent.", label, border=True)
check_regime(A, 0.25, "monotone", "At eta = 1 / lambda_max the factor 1 - eta * lambda_max is exactly 0, "
             "which is not negative.", label, border=True)
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(13)
for d in (1, 2, 3, 5):
    lams = 2.0 ** torch.randint(-3, 4, (d,), generator=gen).to(torch.float64)
    lam_max = lams.max().item()
    perm = torch.randperm(d, generator=gen)
    A = torch.diag(lams)[perm][:, perm]  # a permuted diagonal: its eigenvalues are exact
    lab = f" on a {d}x{d} matrix with eigenvalues {sorted(lams.tolist())}"
    check_regime(A, 2 / lam_max, "divergent", "eta = 2 / lambda_max is divergent.", lab, border=True)
    check_regime(A, 1 / lam_max, "monotone", "eta = 1 / lambda_max is monotone.", lab, border=True)
    check_regime(A, 1.5 / lam_max, "oscillating", "", lab)
    check_regime(A, 0.5 / lam_max, "monotone", "", lab)
    check_regime(A, 3 / lam_max, "divergent", "", lab)
    check_regime(A.float(), 2 / lam_max, "divergent", "In float32 too.", lab + " (float32)", border=True)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    B = Q @ torch.diag(lams) @ Q.T
    B = (B + B.T) / 2
    for scale, expected in ((0.3, "monotone"), (0.9, "monotone"), (1.2, "oscillating"), (1.9, "oscillating"),
                            (2.1, "divergent")):
        check_regime(B, scale / lam_max, expected, "", f" on a random {d}x{d} matrix, eta = {scale} / lambda_max")
### END HIDDEN TESTS

# %% [markdown]
# ### Predict, then check
#
# Before the next experiment, predict. Take
#
# $$A = \begin{pmatrix} 3 & 1 \\ 1 & 3 \end{pmatrix}, \qquad \eta = 0.4 .$$
#
# Will gradient descent on $\tfrac12 w^\top A w$ with this step be `'monotone'`, `'oscillating'` or
# `'divergent'` (the definitions of `step_regime`)? Work it out on paper: the eigenvalues of a symmetric
# $2\times2$ matrix $\begin{pmatrix} a & b \\ b & a \end{pmatrix}$ are $a + b$ and $a - b$, along $(1, 1)$ and $(1, -1)$.
# Do not run anything for this one.
#
# **Exercise 9 (predict, then check).** Set `predicted_regime` to one of the three strings.

# %% deletable=false nbgrader={"grade": false, "grade_id": "predicted_regime", "locked": false, "schema_version": 3, "solution": true, "task": false}
# Replace the lines inside the `with` block by `predicted_regime = "<your choice>"`, one of "monotone",
# "oscillating", "divergent".
with needs("predicted_regime"):
    ### BEGIN SOLUTION
    predicted_regime = "oscillating"
    ### END SOLUTION

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_predicted_regime", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# predicted_regime: your prediction for A = [[3, 1], [1, 3]] and eta = 0.4, against the regime the eigenvalues of A give
A = torch.tensor([[3.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
eta = 0.4
lambdas = [A[0, 0].item() + A[0, 1].item(), A[0, 0].item() - A[0, 1].item()]  # along (1, 1) and (1, -1)
factors = [1.0 - eta * lam for lam in lambdas]  # what one step multiplies each component by
if max(abs(f) for f in factors) >= 1:
    truth = "divergent"
elif min(factors) < 0:
    truth = "oscillating"
else:
    truth = "monotone"
if "predicted_regime" not in globals():
    raise AssertionError("predicted_regime is not set yet: write your prediction in its cell and run it "
                         "(diagnosis: not_implemented)")
choices = ("monotone", "oscillating", "divergent")
if predicted_regime not in choices:
    raise AssertionError(f"predicted_regime must be one of {choices}, got {predicted_regime!r} (diagnosis: wrong_return)")
if predicted_regime != truth:
    raise AssertionError(
        f"you predicted {predicted_regime!r}; the experiment gives {truth!r}: the factors 1 - eta * lambda are "
        f"{[round(v, 3) for v in factors]} for the eigenvalues {lambdas} (diagnosis: prediction)")

# %% [markdown]
# The experiment: twelve steps from $w_0 = (1.5, -0.5)$, written out here (no exercise needed), with the
# error split along the two eigenvectors.

# %%
A_predict = torch.tensor([[3.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
w = torch.tensor([1.5, -0.5], dtype=torch.float64)
along_steep, along_flat = [], []
u_steep = torch.tensor([1.0, 1.0], dtype=torch.float64) / math.sqrt(2)  # eigenvalue 3 + 1 = 4
u_flat = torch.tensor([1.0, -1.0], dtype=torch.float64) / math.sqrt(2)  # eigenvalue 3 - 1 = 2
for _ in range(13):
    along_steep.append((w @ u_steep).item())
    along_flat.append((w @ u_flat).item())
    w = w - 0.4 * (A_predict @ w)
print("along (1, 1), eigenvalue 4: ", " ".join(f"{v:+.3f}" for v in along_steep))
print("along (1, -1), eigenvalue 2:", " ".join(f"{v:+.3f}" for v in along_flat))
growing = abs(along_steep[-1]) >= abs(along_steep[0]) or abs(along_flat[-1]) >= abs(along_flat[0])
flipping = any(a * b < 0 for a, b in zip(along_steep, along_steep[1:])) or any(
    a * b < 0 for a, b in zip(along_flat, along_flat[1:]))
outcome = "divergent" if growing else ("oscillating" if flipping else "monotone")
with needs("predicted_regime"):
    print(f"\nyour prediction: {predicted_regime!r}; the experiment: {outcome!r}")


# %% [markdown]
# ### The three regimes on a valley
#
# Take $\lambda_{\min} = 0.1$ and $\lambda_{\max} = 1$ ($\kappa = 10$), rotated by 30 degrees, and start
# from the same point with three step sizes. The titles come from your `step_regime`; the red
# trajectories from your `gradient_descent` and `quadratic_grad`.

# %%
A_valley = gd_figures.quadratic_matrix(0.1, 1.0, 30.0)
b_zero = torch.zeros(2, dtype=torch.float64)
start_2d = torch.tensor([-2.5, 1.0], dtype=torch.float64)
valley_steps = (0.8, 1.6, 2.05)

with needs("gradient_descent", "quadratic_grad", "step_regime"):
    fig, axes = plots.new_figure(1, 3, size=(3.4, 3.4))
    for ax, eta in zip(axes[0], valley_steps, strict=True):
        path = gradient_descent(lambda w: quadratic_grad(w, A_valley, b_zero), start_2d, eta, 25)
        gd_figures.draw_quadratic_2d(ax, 0.1, 1.0, 30.0, path, title=f"eta = {eta}: {step_regime(A_valley, eta)}")
    display(fig)

# %% [markdown]
# With $\eta = 0.8$ both components shrink without changing sign, but the one along the flat
# direction only by $1 - 0.08 = 0.92$ per step: the steep component is gone after a few steps, and then
# the iterates creep along the valley floor (after 25 steps, $0.92^{25} \approx 0.12$ of the flat
# component is still left). With $\eta = 1.6$ the steep component flips sign each step (factor $-0.6$), a
# zig-zag across the valley. With $\eta = 2.05$ the steep component grows by a factor $1.05$ per step
# and the iterates leave.
#
# The map below shows the rate $\rho = \max_i|1 - \eta\lambda_i|$ over the step size (in units of
# $1/\lambda_{\max}$) and the condition number. Left of the dashed line all directions are monotone; between
# the lines the steep ones oscillate; right of the red line nothing converges. The white curve is the
# best constant step, and the red circles are the three runs above. As $\kappa$ grows, even the best rate
# $(\kappa-1)/(\kappa+1)$ creeps towards 1.

# %%
fig, ax = plots.new_figure(size=(6.2, 4.3))
gd_figures.rate_map(ax, marks=[(eta * 1.0, 10.0) for eta in valley_steps])
fig

# %% [markdown]
# Now move the sliders: step size $\eta\lambda_{\max}$, condition number, rotation and number of steps.
# The right panel compares the distance to the minimum with the prediction $\rho^t \|w_0\|$. Check that
# the rotation changes nothing but the picture's orientation (gradient descent does not care about
# the coordinate axes), and find the step that makes the observed rate smallest for $\kappa = 10$.
# Leave the momentum slider $\beta$ at 0 for now: it comes alive in section 9, once you have written
# `momentum_descent`.

# %%
explorer2 = widgets.gd.explorer_2d(gradient_descent)
explorer2

# %% [markdown]
# ## 7. Conditioning and slow valleys
#
# With the best constant step, the error shrinks by $(\kappa-1)/(\kappa+1) \approx 1 - 2/\kappa$ per step,
# so reaching a relative error $\varepsilon$ takes about $\frac{\kappa}{2} \ln(1/\varepsilon)$ steps:
# **the number of steps grows linearly with the condition number.** The cell counts the steps your
# `gradient_descent` needs to divide the distance to the minimum by $10^6$ with `best_constant_step`, and
# compares with the prediction.

# %%
with needs("gradient_descent", "quadratic_grad", "best_constant_step"):
    kappas = [1.5, 3, 10, 30, 100]
    measured, predicted = [], []
    for kappa in kappas:
        A_k = gd_figures.quadratic_matrix(1.0 / kappa, 1.0, 20.0)
        eta_k = best_constant_step(A_k)
        path = gradient_descent(lambda w: quadratic_grad(w, A_k, b_zero), start_2d, eta_k, 1000)
        distance = path.norm(dim=1) / start_2d.norm()
        measured.append(int((distance > 1e-6).sum()))
        predicted.append(math.log(1e6) / -math.log((kappa - 1) / (kappa + 1)))
        print(f"kappa = {kappa:6.1f}: best step {eta_k:.4f}, {measured[-1]:5d} steps (theory {predicted[-1]:7.1f})")
    fig, ax = plots.new_figure(size=(5.0, 3.4))
    ax.loglog(kappas, measured, "o", label="measured")
    ax.loglog(kappas, predicted, "-", label=r"$\ln(10^6) / \ln\frac{\kappa+1}{\kappa-1}$")
    ax.set_xlabel("condition number")
    ax.set_ylabel("steps to divide the error by 1e6")
    ax.grid(alpha=0.3)
    ax.legend()
    display(fig)


# %% [markdown]
# A loss surface with some directions a hundred times steeper than others forces a step small enough
# for the steep ones, and the flat ones then crawl: a long narrow valley. Deep networks have badly
# conditioned losses, which is why normalising the inputs (as we do below) and, later, optimisers that
# adapt the step per direction matter so much.
#
# ## 8. Training Fleuret's network with a hand-written update
#
# Fleuret's lecture trains a one-hidden-layer network to tell the digit "5" from all the others:
#
# * model `nn.Sequential(nn.Linear(D, 200), nn.ReLU(), nn.Linear(200, 1))`;
# * loss: the mean squared error between the output (flattened with `.view(-1)`) and the 0/1 target;
# * each step: forward on the whole training set, `zero_grad`, `backward` (the black box of section 1:
#   it fills `p.grad` for every parameter `p`), then for every parameter
#   $p \leftarrow p - \eta\, \partial \mathcal{L}/\partial p$, done on the data without recording it
#   in the graph (`with torch.no_grad():` or `p.detach()`);
# * no `torch.optim`: the update is the point of this lab.
#
# **Exercise 10.** Write `train_mlp_gd(x, y, nb_steps, eta)`: create the model inside the function, run
# `nb_steps` steps, and return `(model, losses)` where `losses[t]` is the Python float loss **before**
# update `t`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "train_mlp_gd", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_mlp_gd(x, y, nb_steps, eta):
    """Full-batch gradient descent on mean((model(x).view(-1) - y)^2); each step p <- p - eta * p.grad by hand"""
    ### BEGIN SOLUTION
    model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
    losses = []
    for _ in range(nb_steps):
        yhat = model(x).view(-1)  # (N,)
        loss = ((yhat - y) ** 2).mean()
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= eta * p.grad
    return model, losses
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_train_mlp_gd_model", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# train_mlp_gd: returns (model, losses), the model is Sequential(Linear(D, 200), ReLU(), Linear(200, 1)), losses are nb_steps Python floats
gen = torch.Generator().manual_seed(0)
x = torch.randn(120, 6, generator=gen)
y = (x[:, 0] - x[:, 1] > 0).float()
torch.manual_seed(0)
out = checks.call(train_mlp_gd, x, y, 5, 0.05)
if not (isinstance(out, tuple) and len(out) == 2):
    raise AssertionError(f"train_mlp_gd must return the pair (model, losses); got {type(out).__name__} (diagnosis: wrong_return)")
model, losses = out
layers = list(model) if isinstance(model, nn.Sequential) else None
kinds = [type(layer).__name__ for layer in layers] if layers is not None else None
if kinds != ["Linear", "ReLU", "Linear"]:
    raise AssertionError(
        "train_mlp_gd: the model must be nn.Sequential(nn.Linear(D, 200), nn.ReLU(), nn.Linear(200, 1)); got "
        + (f"a Sequential of {kinds}" if kinds is not None else f"a {type(model).__name__}")
        + " (diagnosis: architecture)"
    )
sizes = (layers[0].in_features, layers[0].out_features, layers[2].in_features, layers[2].out_features)
if sizes != (6, 200, 200, 1):
    raise AssertionError(
        f"train_mlp_gd: the layers have sizes Linear({sizes[0]}, {sizes[1]}) and Linear({sizes[2]}, {sizes[3]}); "
        "expected Linear(D, 200) with D = x.shape[1] = 6, then Linear(200, 1) (diagnosis: architecture)"
    )
if not isinstance(losses, list):
    raise AssertionError(f"train_mlp_gd: losses must be a list, got {type(losses).__name__} (diagnosis: wrong_return)")
checks.assert_equal(len(losses), 5, name="len(losses) for nb_steps=5")
for t, value in enumerate(losses):
    if isinstance(value, torch.Tensor):
        raise AssertionError(
            f"train_mlp_gd: losses[{t}] is a tensor; store loss.item(), a Python float (a stored tensor also keeps "
            "its whole graph alive) (diagnosis: wrong_dtype)"
        )
    if not isinstance(value, float):
        raise AssertionError(
            f"train_mlp_gd: losses[{t}] is a {type(value).__name__}; store loss.item(), a Python float "
            "(diagnosis: wrong_dtype)"
        )
    if not math.isfinite(value):
        raise AssertionError(f"train_mlp_gd: losses[{t}] = {value} is not finite (diagnosis: nan)")
### BEGIN HIDDEN TESTS
torch.manual_seed(3)
x1 = torch.randn(1, 3)
out = checks.call(train_mlp_gd, x1, torch.tensor([1.0]), 2, 0.1)
model, losses = out
checks.assert_equal((model[0].in_features, len(losses)), (3, 2), name="(in_features, len(losses)) for one sample with D=3")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_train_mlp_gd_rule", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# train_mlp_gd: each step changes every parameter by exactly -eta * its gradient, losses[t] is the loss before step t, no torch.optim


def check_update_rule(x, y, nb_steps, eta, seed, label):
    # the parameters in use at every forward pass of the whole model, watched where the model lives
    out, snapshots = checks.call(gd_checks.watch_training, train_mlp_gd, x, y, nb_steps, eta, seed=seed,
                                 name="train_mlp_gd")
    model, losses = out
    names = [n for n, _ in model.named_parameters()]
    states = []
    for snap in snapshots + [[p.detach().clone() for p in model.parameters()]]:
        if not states or not all(torch.equal(a, b) for a, b in zip(states[-1], snap, strict=True)):
            states.append(snap)
    if len(states) != nb_steps + 1:
        raise AssertionError(
            f"train_mlp_gd{label}: the parameters took {len(states) - 1} different steps for nb_steps={nb_steps} "
            "(watched through the calls model(x)); each step must run model(x) on the whole set and update "
            "every parameter once (diagnosis: step_count)"
        )
    reference = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1)).double()
    x64, y64 = x.double(), y.double()
    summed = None
    for t in range(nb_steps):
        with torch.no_grad():
            for p, value in zip(reference.parameters(), states[t], strict=True):
                p.copy_(value)
        reference.zero_grad()
        loss = ((reference(x64).view(-1) - y64) ** 2).mean()
        loss.backward()
        grads = [p.grad.clone() for p in reference.parameters()]
        summed = grads if summed is None else [s + g for s, g in zip(summed, grads, strict=True)]
        # the student's loss is a float32 mean (x is float32): the rule for float32
        if not checks.close(losses[t], loss.item(), torch.float32):
            with torch.no_grad():
                broadcast = ((reference(x64) - y64) ** 2).mean().item()
            if checks.close(losses[t], broadcast, torch.float32):
                raise AssertionError(
                    f"train_mlp_gd{label}: losses[{t}] = {losses[t]:.6g} is the mean of (model(x) - y)^2 with "
                    "model(x) of shape (N, 1) and y of shape (N,), which broadcasts to (N, N); flatten the "
                    f"output with .view(-1) first (expected {loss.item():.6g}) (diagnosis: broadcast)"
                )
        checks.assert_python_float(float(losses[t]), loss.item(), dtype=torch.float32,
                                   name=f"train_mlp_gd{label}: losses[{t}], the mean squared error of the model "
                                        f"before update {t} (record loss.item() before the update)")
        for k, name in enumerate(names):
            change = states[t + 1][k] - states[t][k]
            expected = -eta * grads[k]
            mismatch = checks.compare(change, expected, dtype=change.dtype)
            if mismatch is not None:
                if t > 0 and checks.compare(change, -eta * summed[k], dtype=change.dtype) is None:
                    raise AssertionError(
                        f"train_mlp_gd{label}: at step {t} the update of {name} used the sum of all gradients so "
                        "far; .grad accumulates across backward() calls, so call model.zero_grad() before "
                        "each backward (diagnosis: grad_not_zeroed)"
                    )
                raise AssertionError(mismatch.message(f"train_mlp_gd{label}: the change of {name} at step {t}, "
                                                      "compared with -eta * its gradient"))


gen = torch.Generator().manual_seed(1)
x = torch.randn(80, 5, generator=gen)
y = (x[:, 0] * x[:, 1] > 0).float()
check_update_rule(x, y, 4, 0.5, 1, "(x, y, nb_steps=4, eta=0.5)")
### BEGIN HIDDEN TESTS
check_update_rule(torch.randn(1, 3, generator=gen), torch.tensor([1.0]), 3, 0.1, 4, " with one sample")
x = torch.randn(50, 1, generator=gen)
check_update_rule(x, (x[:, 0] > 0.3).float(), 2, 0.03, 5, " with D=1, eta=0.03")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_train_mlp_gd_loss", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# train_mlp_gd: on an easy problem the training loss goes down (well below the constant predictor's) without torch.optim


def reached_loss(x, y, nb_steps, eta, seed):
    out, _ = checks.call(gd_checks.watch_training, train_mlp_gd, x, y, nb_steps, eta, seed=seed, name="train_mlp_gd")
    model, losses = out
    with torch.no_grad():
        final = ((model(x).view(-1) - y) ** 2).mean().item()
    if not (len(losses) == nb_steps and losses[-1] < losses[0]):
        raise AssertionError(f"train_mlp_gd: the loss did not decrease ({losses[:1]} ... {losses[-1:]}) (diagnosis: not_learning)")
    return final


gen = torch.Generator().manual_seed(2)
x = torch.randn(200, 6, generator=gen)
y = (x[:, 0] + 0.5 * x[:, 1] > 0).float()
final = reached_loss(x, y, 200, 0.05, 2)
if not final < 0.1:
    raise AssertionError(
        f"train_mlp_gd: after 200 steps with eta=0.05 the training loss is {final:.4f}; a correct gradient descent "
        "gets below 0.1 on this easy problem (predicting a constant gives about 0.25) (diagnosis: not_learning)"
    )
### BEGIN HIDDEN TESTS
x = torch.rand(150, 2, generator=gen) * 2 - 1
y = ((x[:, 0] > 0) != (x[:, 1] > 0)).float()  # xor of the signs: needs the hidden layer
final = reached_loss(x, y, 400, 0.1, 6)
if not final < 0.12:
    raise AssertionError(f"train_mlp_gd: the loss on a xor problem stays at {final:.4f} (diagnosis: not_learning)")
### END HIDDEN TESTS

# %% [markdown]
# ### "5" against the rest of the digits
#
# Fleuret's lecture uses 1,000 MNIST images of 28x28 pixels; we use the first 1,000 of scikit-learn's 8x8
# digits (about 100 of them are fives), keep the other 797 to test, and normalise the pixels with the
# mean and standard deviation of the training set, as Fleuret's lecture does. The step size is his,
# $\eta = 10^{-2}$.

# %%
x_digits, y_digits = data.digits_binary("5 vs rest", labels="01")
x_train, y_train = x_digits[:1000], y_digits[:1000]
x_test, y_test = x_digits[1000:], y_digits[1000:]
x_train, x_test = data.standardize(x_train, x_test)
print(f"training set {tuple(x_train.shape)} with {int(y_train.sum())} fives; test set {tuple(x_test.shape)}")

# %% [markdown]
# `train_mlp_gd` returns only the losses, but Fleuret's log also counts the misclassified images
# (output above 0.5 means "5") every 100 steps. A **forward hook** lets us watch the network's output
# at every forward pass without touching your function: `torch` calls it each time a module runs.

# %%
errors_at = {}


def count_errors(module, args, output):
    """Called after every module's forward; counts the errors of the whole network every 100 passes."""
    if isinstance(module, nn.Sequential) and output.shape[0] == len(y_train):
        step = count_errors.calls
        count_errors.calls += 1
        if step % 100 == 0:
            errors_at[step] = int(((output.detach().view(-1) > 0.5).float() != y_train).sum())


count_errors.calls = 0
with needs("train_mlp_gd"):
    handle = torch.nn.modules.module.register_module_forward_hook(count_errors)
    try:
        torch.manual_seed(0)
        mlp, mlp_losses = train_mlp_gd(x_train, y_train, 1001, 1e-2)
    finally:
        handle.remove()
    print("step  loss      errors")
    for step, nb_errors in sorted(errors_at.items()):
        print(f"{step:4d}  {mlp_losses[step]:.6f}  {nb_errors}")

# %%
with needs("train_mlp_gd"):
    with torch.no_grad():
        test_errors = int(((mlp(x_test).view(-1) > 0.5).float() != y_test).sum())
    print(f"test errors: {test_errors} of {len(y_test)} ({100 * test_errors / len(y_test):.1f}%)")
    fig, ax = plots.new_figure(size=(5.0, 3.2))
    plots.loss_curves(ax, {"training loss": mlp_losses})
    display(fig)

# %% [markdown]
# As in Fleuret's lecture, the errors counted in the log are **training** errors: they fall to a handful
# while the loss keeps decreasing slowly. The test errors say how well that transfers to images the
# network never saw.


# %% [markdown]
# ## 9. Momentum and adaptive steps
#
# Section 7 ended on a sour note: with the best constant step, gradient descent needs a number of
# steps proportional to the condition number $\kappa$. The flat directions crawl because the step
# must stay small enough for the steep ones. Two families of methods attack this, and every
# optimiser used to train networks today belongs to one of them or both:
#
# * **momentum** remembers the previous steps, so that a direction in which the gradient keeps the
#   same sign builds up speed while a direction in which it flips sign averages out;
# * **adaptive steps** (Adam and its relatives) divide each coordinate's step by a running estimate
#   of the size of that coordinate's gradient.
#
# ### 9.1 The heavy ball
#
# Polyak's heavy-ball method (1964) keeps a velocity $z$, the sum of the past gradients with older
# ones forgotten geometrically:
#
# $$z_{t+1} = \beta z_t + \nabla \mathcal{L}(w_t), \qquad w_{t+1} = w_t - \eta\, z_{t+1}, \qquad z_0 = 0 .$$
#
# With $\beta = 0$ this is gradient descent; with $\beta$ close to 1 the ball remembers many steps.
# Unrolled, $w_{t+1} - w_t = \beta (w_t - w_{t-1}) - \eta \nabla\mathcal{L}(w_t)$: the previous move,
# shrunk by $\beta$, plus an ordinary gradient step. (Gabriel Goh's *Why Momentum Really Works*,
# Distill 2017, uses exactly this form; `torch.optim.SGD(momentum=beta)` too.)
#
# **Exercise 11.** Write `momentum_descent(grad_fn, w0, eta, beta, nb_steps)`: return the
# `(nb_steps + 1, D)` tensor of iterates, `w0` first, in `w0`'s dtype, without changing `w0`. Write the
# loop yourself (no `torch.optim`). Update `z` first, then use the new `z` to move `w`.

# %% deletable=false nbgrader={"grade": false, "grade_id": "momentum_descent", "locked": false, "schema_version": 3, "solution": true, "task": false}
def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
    """z[0] = 0, z[t+1] = beta z[t] + grad_fn(w[t]), w[t+1] = w[t] - eta z[t+1]; returns the (nb_steps + 1, D) iterates"""
    ### BEGIN SOLUTION
    iterates = torch.empty(nb_steps + 1, w0.numel(), dtype=w0.dtype, device=w0.device)
    iterates[0] = w0
    velocity = torch.zeros_like(iterates[0])
    for t in range(nb_steps):
        velocity = beta * velocity + grad_fn(iterates[t].clone())
        iterates[t + 1] = iterates[t] - eta * velocity
    return iterates
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_momentum_descent", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# momentum_descent: every heavy-ball iterate for beta > 0 on non-constant gradients, with the usual slips named


def heavy_ball_variants(grad_fn, w0, eta, beta, nb_steps):
    """The right iterates and those of the usual slips, computed by the test in float64."""
    out = {}
    for kind in ("right", "z_after_w", "ema", "beta_on_w", "beta_on_w_velocity", "no_momentum"):
        w = w0.detach().to(torch.float64).clone()
        z = torch.zeros_like(w)
        rows = [w.clone()]
        for _ in range(nb_steps):
            g = grad_fn(w.clone())
            if kind == "right":
                z = beta * z + g
                w = w - eta * z
            elif kind == "z_after_w":  # moves with the old velocity, then updates it
                w = w - eta * z
                z = beta * z + g
            elif kind == "ema":
                z = beta * z + (1 - beta) * g
                w = w - eta * z
            elif kind == "beta_on_w":
                w = beta * w - eta * g
            elif kind == "beta_on_w_velocity":
                z = beta * w + g
                w = w - eta * z
            else:
                w = w - eta * g
            rows.append(w.clone())
        out[kind] = torch.stack(rows)
    return out


SLIPS = {
    "z_after_w": ("the weights move with the old velocity z[t] and z is updated afterwards; compute "
                  "z[t+1] = beta * z[t] + grad_fn(w[t]) first, then w[t+1] = w[t] - eta * z[t+1]", "momentum_order"),
    "ema": ("the velocity is the average beta * z + (1 - beta) * g; heavy ball adds the whole gradient, "
            "z = beta * z + g", "momentum_ema"),
    "beta_on_w": ("beta multiplies the weights (w = beta * w - eta * g); it must multiply the velocity z",
                  "momentum_on_w"),
    "beta_on_w_velocity": ("the velocity is built from the weights (z = beta * w + g); it is built from the "
                           "previous velocity, z = beta * z + g", "momentum_on_w"),
    "no_momentum": ("these are the iterates of plain gradient descent: beta is never used", "momentum_ignored"),
}


def check_momentum(grad_fn, w0, eta, beta, nb_steps, label):
    refs = heavy_ball_variants(grad_fn, w0, eta, beta, nb_steps)
    got = checks.call(momentum_descent, grad_fn, w0.clone(), eta, beta, nb_steps)
    name = f"momentum_descent{label}"
    if isinstance(got, torch.Tensor):
        d = w0.numel()
        if got.shape == w0.shape and nb_steps > 0:
            raise AssertionError(f"{name} returned one vector: return every iterate, a ({nb_steps + 1}, {d}) tensor "
                                 "whose row 0 is w0 (diagnosis: last_only)")
        if tuple(got.shape) == (nb_steps, d):
            raise AssertionError(f"{name} returned {nb_steps} rows; the result has nb_steps + 1 = {nb_steps + 1} rows, "
                                 "starting with w0 itself (diagnosis: missing_w0)")
        if got.shape == refs["right"].shape and nb_steps > 1 and bool((got == got[-1]).all()):
            raise AssertionError(f"{name}: every row is the same vector; store a copy of each iterate "
                                 "(diagnosis: aliasing)")
        if got.shape == refs["right"].shape and checks.compare(got, refs["right"], dtype=got.dtype) is not None:
            for kind, (why, tag) in SLIPS.items():
                if checks.compare(got, refs[kind], dtype=got.dtype) is None:
                    raise AssertionError(f"{name}: {why} (diagnosis: {tag})")
    checks.assert_close(got, refs["right"], name=name, dtype=w0.dtype)


target = torch.tensor([1.0, -2.0], dtype=torch.float64)
steep = torch.tensor([1.0, 0.2], dtype=torch.float64)


def valley_grad(w):  # the gradient of 0.5 * sum(steep * (w - target)^2): not a constant
    return steep * (w - target)


check_momentum(valley_grad, torch.tensor([3.0, 0.5], dtype=torch.float64), 0.5, 0.6, 8,
               "(valley_grad, w0, eta=0.5, beta=0.6, nb_steps=8)")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(91)
for d, eta, beta, nb_steps in ((1, 0.3, 0.5, 6), (3, 0.1, 0.9, 15), (5, 0.05, 0.3, 20), (2, 0.8, 0.75, 4)):
    M = torch.randn(d, d, generator=gen, dtype=torch.float64)
    c = torch.randn(d, generator=gen, dtype=torch.float64)

    def hidden_grad(w, M=M, c=c):
        return torch.sin(M @ w) + 0.5 * w - c

    point = torch.randn(d, generator=gen, dtype=torch.float64)
    check_momentum(hidden_grad, point, eta, beta, nb_steps, f" (D={d}, eta={eta}, beta={beta}, nb_steps={nb_steps})")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_momentum_descent_inputs", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# momentum_descent: keeps w0's dtype, leaves w0 unchanged, beta = 0 is gradient descent, nb_steps = 0 gives w0, no torch.optim


def call_without_optim(grad_fn, w0, *args):
    kept = w0.clone()
    out = checks.call(gd_checks.without_optim, momentum_descent, grad_fn, w0, *args, name="momentum_descent",
                      refusal="momentum_descent created a torch.optim optimizer ({optimizer}); this exercise asks "
                              "for the loop written by hand: z = beta * z + g, then w = w - eta * z (diagnosis: policy)")
    if not torch.equal(w0, kept):
        raise AssertionError("momentum_descent changed w0: an in-place update (w -= ...) on w0 itself modifies the "
                             "caller's tensor; start from w0.clone() (diagnosis: modified_input)")
    return out


for dtype in (torch.float32, torch.float64):
    w0 = torch.tensor([0.5, -1.5, 2.0], dtype=dtype)
    before = w0.clone()
    got = call_without_optim(lambda w: 2 * w, w0, 0.1, 0.0, 3)
    factors = torch.tensor([1.0, 0.8, 0.64, 0.512], dtype=torch.float64)[:, None]
    checks.assert_close(got, factors * before.to(torch.float64),
                        name=f"momentum_descent with beta=0 (gradient descent on ||w||^2, {dtype})", dtype=dtype)
    got = call_without_optim(lambda w: 2 * w, w0, 0.1, 0.5, 2)
    # z1 = 2 w0, w1 = 0.8 w0; z2 = 0.5 * 2 w0 + 1.6 w0 = 2.6 w0, w2 = 0.8 w0 - 0.26 w0 = 0.54 w0
    factors = torch.tensor([1.0, 0.8, 0.54], dtype=torch.float64)[:, None]
    checks.assert_close(got, factors * before.to(torch.float64), name=f"momentum_descent with beta=0.5 ({dtype})",
                        dtype=dtype)
    none = call_without_optim(lambda w: 2 * w, w0, 0.1, 0.9, 0)
    checks.assert_close(none, before[None, :], name=f"momentum_descent with nb_steps=0 ({dtype})", dtype=dtype)
### BEGIN HIDDEN TESTS
one = torch.tensor([4.0], dtype=torch.float64)
got = call_without_optim(lambda w: w - 1, one.clone(), 0.5, 0.5, 3)
# z1 = 3, w1 = 2.5; z2 = 1.5 + 1.5 = 3, w2 = 1; z3 = 1.5 + 0 = 1.5, w3 = 0.25
checks.assert_close(got, torch.tensor([[4.0], [2.5], [1.0], [0.25]], dtype=torch.float64), name="momentum_descent with D=1")
### END HIDDEN TESTS

# %% [markdown]
# ### 9.2 The rate of the heavy ball on a quadratic
#
# On $\mathcal{L}(w) = \frac12 w^\top A w$ the gradient is $A w$, and along an eigenvector with eigenvalue
# $\lambda$ the pair (velocity, weight) evolves by a fixed $2 \times 2$ matrix:
#
# $$\begin{pmatrix} z_{t+1} \\ w_{t+1} \end{pmatrix} = \underbrace{\begin{pmatrix} \beta & \lambda \\ -\eta\beta & 1 - \eta\lambda \end{pmatrix}}_{M_\lambda} \begin{pmatrix} z_t \\ w_t \end{pmatrix}
# \qquad\text{since}\qquad w_{t+1} = w_t - \eta(\beta z_t + \lambda w_t).$$
#
# The error along that direction shrinks like $\rho(M_\lambda)^t$, where $\rho$ is the **spectral radius**,
# the largest modulus of the (possibly complex) eigenvalues of $M_\lambda$. The whole run goes at the pace
# of the worst direction: the rate is $\max_\lambda \rho(M_\lambda)$. With $\beta = 0$ the matrix is
# triangular and $\rho = |1 - \eta\lambda|$, the rate of section 6.
#
# **Exercise 12.** Write `heavy_ball_rate(eigenvalues, eta, beta)`: `eigenvalues` is a list, a tuple or a
# 1-D tensor of numbers, **in any order**; return the Python float
# $\max_\lambda \rho(M_\lambda)$. Build each $M_\lambda$ in float64 (`torch.linalg.eigvals` returns complex
# eigenvalues; take their `.abs()`): near the best momentum the two eigenvalues of $M_\lambda$ nearly
# coincide, and float32 is then off in the fourth digit.

# %% deletable=false nbgrader={"grade": false, "grade_id": "heavy_ball_rate", "locked": false, "schema_version": 3, "solution": true, "task": false}
def heavy_ball_rate(eigenvalues, eta, beta):
    """max over lambda of the spectral radius of [[beta, lambda], [-eta beta, 1 - eta lambda]], in float64, a Python float"""
    ### BEGIN SOLUTION
    lambdas = torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)
    worst = 0.0
    for lam in lambdas.tolist():
        M = torch.tensor([[beta, lam], [-eta * beta, 1.0 - eta * lam]], dtype=torch.float64)
        worst = max(worst, torch.linalg.eigvals(M).abs().max().item())
    return worst
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_heavy_ball_rate", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# heavy_ball_rate: the worst spectral radius over unsorted eigenvalues, in float64, with the usual slips named


def radius(lam, eta, beta):  # the roots of x^2 - (1 + beta - eta lam) x + beta: trace and determinant of M
    trace = 1.0 + beta - eta * lam
    disc = trace * trace - 4.0 * beta
    if disc < 0:
        return math.sqrt(beta)  # complex pair: both have modulus sqrt(det M) = sqrt(beta)
    return max(abs(trace + math.sqrt(disc)), abs(trace - math.sqrt(disc))) / 2


def real_parts(lam, eta, beta):  # the largest real part of the two eigenvalues of M (a slip)
    trace = 1.0 + beta - eta * lam
    disc = trace * trace - 4.0 * beta
    return trace / 2 if disc < 0 else (trace + math.sqrt(disc)) / 2


def radius_float32(lam, eta, beta):
    M = torch.tensor([[beta, lam], [-eta * beta, 1 - eta * lam]], dtype=torch.float32)
    return torch.linalg.eigvals(M).abs().max().item()


def coalescing_magnitude(lams, eta, beta, dtype):
    """The rule's magnitude for the eigenvalues of M computed in dtype. Near critical damping the two
    eigenvalues of M coincide, and a double root moves by sqrt(eps) * |M| when the entries of M are rounded
    by eps * |M|: that is eps * (|M| / sqrt(eps))."""
    size = max(max(abs(beta), abs(lam), abs(eta * beta), abs(1 - eta * lam)) for lam in lams)
    return size / math.sqrt(torch.finfo(dtype).eps)


def check_rate(eigenvalues, eta, beta, label):
    lams = [float(v) for v in torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)]
    expected = max(radius(lam, eta, beta) for lam in lams)
    rule = {"magnitude": coalescing_magnitude(lams, eta, beta, torch.float64), "reference_scale": abs(expected)}
    got = checks.call(heavy_ball_rate, eigenvalues, eta, beta)
    name = f"heavy_ball_rate{label}"
    if isinstance(got, torch.Tensor):
        raise AssertionError(f"{name}: expected a Python float, got a tensor; call .item() (diagnosis: wrong_dtype)")
    if not isinstance(got, float):
        raise AssertionError(f"{name}: expected a Python float, got {type(got).__name__} (diagnosis: wrong_dtype)")
    if checks.close(got, expected, **rule):  # M is built in float64, as the exercise says
        return

    def near(value):
        return checks.close(got, value, **rule)

    as_float32 = checks.close(got, expected, torch.float32, reference_scale=abs(expected),
                              magnitude=coalescing_magnitude(lams, eta, beta, torch.float32))
    if near(max(radius_float32(lam, eta, beta) for lam in lams)) or as_float32:
        raise AssertionError(
            f"{name} = {got!r}, expected {expected!r}: close but not equal, as a 2x2 matrix in float32 gives "
            "near critical damping; build M with dtype=torch.float64 (diagnosis: wrong_dtype)")
    if len(lams) > 1 and near(radius(max(lams), eta, beta)):
        raise AssertionError(
            f"{name} = {got!r}, expected {expected!r}: only the largest eigenvalue was used. With momentum (as "
            "without) the smallest one can be the slowest direction: take the largest radius over every lambda "
            "(diagnosis: spectral_radius)")
    if len(lams) > 1 and near(min(radius(lam, eta, beta) for lam in lams)):
        raise AssertionError(
            f"{name} = {got!r}, expected {expected!r}: that is the smallest radius over the eigenvalues; the slowest "
            "direction sets the rate, so take the largest (diagnosis: spectral_radius)")
    if len(lams) > 1 and (near(max(radius(lams[0], eta, beta), radius(lams[-1], eta, beta)))
                          or near(radius(lams[-1], eta, beta)) or near(radius(lams[0], eta, beta))):
        raise AssertionError(
            f"{name} = {got!r}, expected {expected!r}: only the first and/or last eigenvalue of {lams} were used, "
            "as if they were sorted; the eigenvalues come in any order: look at every one (or at their min() "
            "and max()) (diagnosis: eigenvalues_sorted)")
    if near(max(real_parts(lam, eta, beta) for lam in lams)):
        raise AssertionError(
            f"{name} = {got!r}, expected {expected!r}: that is the largest real part of the eigenvalues of M; the "
            "spectral radius is the largest modulus, .abs() of the complex eigenvalues (diagnosis: spectral_radius)")
    raise AssertionError(
        f"{name} = {got!r}, expected {expected!r}. For each lambda, the rate of that direction is the largest "
        "modulus |mu| of the two eigenvalues mu of M = [[beta, lambda], [-eta * beta, 1 - eta * lambda]] "
        "(complex ones included); the answer is the largest of these over the lambdas (diagnosis: heavy_ball_matrix)")


# beta = 0 is gradient descent: max |1 - eta * lambda| = max(|1 - 0.1|, |1 - 1|) = 0.9
check_rate([0.1, 1.0], 1.0, 0.0, "([0.1, 1.0], eta=1.0, beta=0.0)")
# one direction whose M has a complex pair of eigenvalues: both have modulus sqrt(det M) = sqrt(beta) = 0.9
check_rate([1.0], 0.5, 0.81, "([1.0], eta=0.5, beta=0.81)")
# unsorted eigenvalues: the largest one is the worst here, and it is not first
check_rate((0.3, 5.0, 1.0), 0.46, 0.2, "((0.3, 5.0, 1.0), eta=0.46, beta=0.2)")
# the slowest direction is the smallest eigenvalue, lambda = 0.02, third in the list
check_rate([0.5, 4.0, 0.02, 1.0], 0.2, 0.5, "([0.5, 4.0, 0.02, 1.0], eta=0.2, beta=0.5)")
# the best momentum for kappa = 100 (critical damping): the rate is (sqrt(100) - 1) / (sqrt(100) + 1) = 9 / 11
check_rate(torch.tensor([1.0, 0.01], dtype=torch.float64), 4 / 1.1**2, (9 / 11) ** 2, "(kappa = 100, best eta and beta)")
### BEGIN HIDDEN TESTS
gen = torch.Generator().manual_seed(92)
for d in (1, 2, 3, 6):
    for _ in range(4):
        lams = 10 ** (2 * torch.rand(d, generator=gen, dtype=torch.float64) - 1.5)
        lams = lams[torch.randperm(d, generator=gen)]
        if d > 1 and int(lams.argmax()) == 0:
            lams = lams.flip(0)  # the largest eigenvalue is never first
        eta = float(torch.rand((), generator=gen)) * 2.5 / float(lams.max())
        beta = float(torch.rand((), generator=gen)) * 0.95
        for given in (lams.tolist(), tuple(lams.tolist()), lams):
            check_rate(given, eta, beta, f" on eigenvalues {[round(v, 4) for v in lams.tolist()]} given as "
                       f"{type(given).__name__}, eta={eta:.4f}, beta={beta:.4f}")
for kappa in (2.0, 10.0, 1000.0):
    check_rate([1.0, 3.0, 1.0 / kappa, 2.0], 4 / (math.sqrt(3.0) + math.sqrt(1.0 / kappa)) ** 2,
               ((math.sqrt(3.0 * kappa) - 1) / (math.sqrt(3.0 * kappa) + 1)) ** 2, f" at critical damping, kappa={3 * kappa}")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_heavy_ball_rate_inputs", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# heavy_ball_rate: accepts a list, a tuple, a float32 or float64 1-D tensor, or integers, returns a Python float, changes nothing
expected = max(abs(1 - 0.5 * lam) for lam in (1.0, 3.0))  # beta = 0: gradient descent's rate, 0.5
for given in ([3, 1], (1.0, 3.0), torch.tensor([3.0, 1.0]), torch.tensor([1.0, 3.0], dtype=torch.float64)):
    kept = given.clone() if isinstance(given, torch.Tensor) else given
    got = checks.call(heavy_ball_rate, given, 0.5, 0.0)
    checks.assert_python_float(got, expected, name=f"heavy_ball_rate({given!r}, eta=0.5, beta=0.0)")
    if isinstance(given, torch.Tensor) and not torch.equal(given, kept):
        raise AssertionError("heavy_ball_rate changed the eigenvalues it was given (diagnosis: modified_input)")
### BEGIN HIDDEN TESTS
got = checks.call(heavy_ball_rate, torch.tensor([0.25], dtype=torch.float32), 1.0, 0.64)
checks.assert_python_float(got, 0.8, name="heavy_ball_rate(float32 tensor [0.25], eta=1.0, beta=0.64)")
got = checks.call(heavy_ball_rate, [2], 1.5, 0.0)
checks.assert_python_float(got, 2.0, name="heavy_ball_rate([2], eta=1.5, beta=0.0): a divergent step")
### END HIDDEN TESTS

# %% [markdown]
# ### The phase diagram
#
# Take the valley of section 6, eigenvalues $\lambda_{\min} = 0.1$ and $\lambda_{\max} = 1$ ($\kappa = 10$),
# and compute **your** `heavy_ball_rate` over a grid of step sizes and momenta. The bottom row
# ($\beta = 0$) is gradient descent: the best it can do is $(\kappa - 1)/(\kappa + 1) \approx 0.82$ at
# $\eta = 2/(\lambda_{\min} + \lambda_{\max})$. With momentum the convergent region stretches to the right
# (up to $\eta < 2(1 + \beta)/\lambda_{\max}$) and the best rate drops to
# $(\sqrt\kappa - 1)/(\sqrt\kappa + 1) \approx 0.52$, at
#
# $$\eta^\star = \frac{4}{(\sqrt{\lambda_{\max}} + \sqrt{\lambda_{\min}})^2}, \qquad
# \beta^\star = \left(\frac{\sqrt\kappa - 1}{\sqrt\kappa + 1}\right)^2 .$$
#
# There both eigenvalues of $M_\lambda$ have modulus $\sqrt{\beta}$ for every $\lambda$ in the spectrum:
# the extreme directions are balanced, as the best constant step balances them without momentum.

# %%
def best_heavy_ball(lam_min, lam_max):
    """(eta, beta) of the best heavy ball on a quadratic with these extreme eigenvalues (Polyak)."""
    root = math.sqrt(lam_max / lam_min)
    return 4 / (math.sqrt(lam_max) + math.sqrt(lam_min)) ** 2, ((root - 1) / (root + 1)) ** 2


valley_eigenvalues = [0.1, 1.0]
eta_hb, beta_hb = best_heavy_ball(0.1, 1.0)
with needs("heavy_ball_rate"):
    etas = torch.linspace(0.02, 4.0, 80).tolist()
    betas = torch.linspace(0.0, 0.98, 50).tolist()
    rates = [[heavy_ball_rate(valley_eigenvalues, eta, beta) for eta in etas] for beta in betas]
    fig, ax = plots.new_figure(size=(6.2, 4.3))
    momentum_figures.phase_diagram(ax, etas, betas, rates, kappa=10, marks=[
        (eta_hb, beta_hb, f"best: {heavy_ball_rate(valley_eigenvalues, eta_hb, beta_hb):.3f}"),
        (2 / 1.1, 0.0, f"best without momentum: {heavy_ball_rate(valley_eigenvalues, 2 / 1.1, 0.0):.3f}"),
    ])
    display(fig)

# %% [markdown]
# ### Measured against predicted
#
# A rate is a prediction about iterates; check it. Each point below is one run of **your**
# `momentum_descent` on the valley (rotated by 30 degrees, 200 steps): the contraction measured over
# steps 100 to 200 against `heavy_ball_rate`.

# %%
runs = [(0.5, 0.0), (1.6, 0.0), (eta_hb, beta_hb), (1.0, 0.3), (2.0, 0.5), (0.5, 0.8), (3.0, 0.6), (1.5, 0.9)]
with needs("momentum_descent", "heavy_ball_rate", "quadratic_grad"):
    predicted_rates, measured_rates = [], []
    for eta, beta in runs:
        path = momentum_descent(lambda w: quadratic_grad(w, A_valley, b_zero), start_2d, eta, beta, 200)
        predicted_rates.append(heavy_ball_rate(valley_eigenvalues, eta, beta))
        measured_rates.append(momentum_figures.observed_rate(path, 100, 200))
        print(f"eta = {eta:.3f}, beta = {beta:.3f}: predicted {predicted_rates[-1]:.4f}, measured {measured_rates[-1]:.4f}")
    fig, ax = plots.new_figure(size=(4.6, 4.2))
    momentum_figures.rate_scatter(ax, predicted_rates, measured_rates)
    display(fig)

# %% [markdown]
# ### The $\sqrt{\kappa}$ law
#
# Redo section 7's count (steps to divide the distance to the minimum by $10^6$) with the best heavy
# ball, over the same condition numbers. Without momentum the best rate is $(\kappa - 1)/(\kappa + 1)$, so
# the count grows like $\kappa$; with the best momentum it is $(\sqrt\kappa - 1)/(\sqrt\kappa + 1)$ and the
# count grows like $\sqrt\kappa$: for $\kappa = 100$, about 10 times fewer steps. (At critical damping
# the error shrinks like $t \rho^t$ rather than $\rho^t$, so the measured counts sit a little above the
# line.)

# %%
with needs("momentum_descent", "gradient_descent", "quadratic_grad", "heavy_ball_rate"):
    counts_gd, counts_hb, lines_gd, lines_hb = [], [], [], []
    for kappa in kappas:
        A_k = gd_figures.quadratic_matrix(1.0 / kappa, 1.0, 20.0)
        eta_k, beta_k = best_heavy_ball(1.0 / kappa, 1.0)

        def grad_k(w, A_k=A_k):
            return quadratic_grad(w, A_k, b_zero)

        plain = gradient_descent(grad_k, start_2d, 2 / (1 + 1 / kappa), 1000)
        heavy = momentum_descent(grad_k, start_2d, eta_k, beta_k, 1000)
        counts_gd.append(int((plain.norm(dim=1) / start_2d.norm() > 1e-6).sum()))
        counts_hb.append(int((heavy.norm(dim=1) / start_2d.norm() > 1e-6).sum()))
        rate_hb = heavy_ball_rate([1.0 / kappa, 1.0], eta_k, beta_k)
        lines_gd.append(math.log(1e6) / -math.log((kappa - 1) / (kappa + 1)))
        lines_hb.append(math.log(1e6) / -math.log(rate_hb))
        print(f"kappa = {kappa:6.1f}: gradient descent {counts_gd[-1]:4d} steps, heavy ball {counts_hb[-1]:3d} steps "
              f"(rate {rate_hb:.4f}, (sqrt(k) - 1) / (sqrt(k) + 1) = {(math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1):.4f})")
    fig, ax = plots.new_figure(size=(5.4, 3.6))
    ax.loglog(kappas, counts_gd, "o", color="#1f77b4", label="gradient descent, best step (measured)")
    ax.loglog(kappas, lines_gd, "-", color="#1f77b4", lw=1, label=r"$\ln 10^6 / \ln\frac{\kappa+1}{\kappa-1}$")
    ax.loglog(kappas, counts_hb, "s", color="#d62728", label="heavy ball, best (measured)")
    ax.loglog(kappas, lines_hb, "-", color="#d62728", lw=1, label=r"$\ln 10^6 / \ln\frac{\sqrt{\kappa}+1}{\sqrt{\kappa}-1}$")
    ax.set_xlabel("condition number κ")
    ax.set_ylabel("steps to divide the error by 1e6")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    display(fig)

# %% [markdown]
# ### Momentum in the explorer
#
# The 2-D explorer of section 6 has a momentum slider $\beta$; the cell below hands it your
# `momentum_descent` and `heavy_ball_rate` and shows it again (both views are the same explorer). With
# $\beta > 0$ the right panel compares the distance to the minimum with `heavy_ball_rate`'s prediction.
# Set $\kappa = 100$, put $\beta$ back to 0 and find the best step, then raise $\beta$ towards 0.8 and push
# the step up: the trajectory swings across the valley like a ball rolling in a gutter, and reaches the
# minimum far sooner. Too much momentum is slow too: the two eigenvalues of $M_\lambda$ multiply to
# $\det M_\lambda = \beta$, so the rate is never below $\sqrt\beta$, and with $\beta$ near 1 the ball swings for a
# long time.

# %%
explorer2.use_momentum(momentum_descent, heavy_ball_rate, kappa=100.0, beta=0.6, eta=1.5, nb_steps=60)

# %% [markdown]
# ### 9.3 Stochastic gradients and the noise floor
#
# A network's loss is an average over $N$ examples; computing its exact gradient at every step is
# what `train_mlp_gd` did, and it is too expensive on large data sets. **Stochastic** (mini-batch)
# gradient descent uses the gradient of the loss averaged over a random batch of $B$ examples, as in
# Rémy Sun's lecture: $\theta^{t+1} = \theta^t - \eta \frac{1}{B}\sum_{k \in \text{batch}} \nabla_\theta \ell_k$. That
# estimate is right on average, but noisy, and its variance falls like $1/B$.
#
# With a constant step, the noise never lets the iterates settle: near the minimum the pull of the
# gradient and the kicks of the noise balance, and the loss stops decreasing at a **noise floor**. The
# cell below runs **your** `gradient_descent` with a `grad_fn` that draws a new batch at every call, on a
# least-squares problem with 2,000 examples in 5 dimensions and label noise $\sigma = 0.5$ (step
# $\eta = 0.05$). For this problem (inputs with identity covariance) a short calculation predicts a floor
# of about $\eta\sigma^2 D / (2B(2 - \eta))$ for small steps.

# %%
noisy = momentum_figures.regression_problem(nb_samples=2000, dim=5, noise=0.5, seed=0)
batch_sizes = [1, 4, 16, 64, 256]
with needs("gradient_descent"):
    eta_sgd, curves, floors = 0.05, {}, []
    for batch_size in batch_sizes:
        gen = torch.Generator().manual_seed(1)
        path = gradient_descent(noisy.batch_gradient(batch_size, gen), torch.zeros(noisy.dim, dtype=torch.float64),
                                eta_sgd, 600)
        curves[batch_size] = [noisy.excess(w) for w in path]
        floors.append(sum(curves[batch_size][300:]) / len(curves[batch_size][300:]))
    predicted_floors = [eta_sgd * noisy.noise**2 * noisy.dim / (2 * b * (2 - eta_sgd)) for b in batch_sizes]
    for b, f, p in zip(batch_sizes, floors, predicted_floors, strict=True):
        print(f"B = {b:4d}: floor {f:.2e} (predicted {p:.2e})")
    fig, axes = plots.new_figure(1, 2, size=(4.6, 3.4))
    momentum_figures.noise_floor_curves(axes[0, 0], curves)
    momentum_figures.noise_floor_plot(axes[0, 1], batch_sizes, floors, predicted_floors)
    display(fig)

# %% [markdown]
# All batch sizes descend at the same speed at first (the step does not depend on $B$, because the
# loss is averaged over the batch), then each stops at its own floor, 4 times lower each time the
# batch is 4 times larger. The other ways down are a smaller step (the floor is proportional to
# $\eta$, but the descent slows too) or a step that decreases over time.
#
# ### 9.4 Adaptive steps: Adam
#
# Momentum fixes the *direction* of the steps; Adam (Kingma and Ba, 2015) also rescales each coordinate.
# It keeps two running averages per parameter, of the gradient and of its square, corrects both for
# starting at zero, and divides one by the square root of the other:
#
# $$m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
# \hat m_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat v_t = \frac{v_t}{1 - \beta_2^t}, \quad
# w_t = w_{t-1} - \text{lr}\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},$$
#
# with $m_0 = v_0 = 0$ and $t = 1$ at the first step. Without the corrections the first steps would be
# far too small ($m_1 = 0.1\, g_1$ with $\beta_1 = 0.9$). The ratio $\hat m / \sqrt{\hat v}$ has no unit: multiply
# the loss by 1000 and the steps stay the same. $\epsilon$ only guards against dividing by zero.
#
# **Exercise 13.** Write `adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)`. `state` is `{}`
# before the first step, then the dict your previous call returned, with `'t'` (the number of steps
# taken, a Python int), `'m'` and `'v'` (tensors shaped like `w`). Return `(new_w, new_state)`: the same
# numbers as `torch.optim.Adam` with those arguments, but written by hand (no `torch.optim`). Do **not**
# modify `w`, `g`, `state` or the tensors inside `state`: build new ones.

# %% deletable=false nbgrader={"grade": false, "grade_id": "adam_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    """m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, new_w = w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)"""
    ### BEGIN SOLUTION
    beta1, beta2 = betas
    t = state.get("t", 0) + 1
    m = beta1 * state["m"] + (1 - beta1) * g if state else (1 - beta1) * g
    v = beta2 * state["v"] + (1 - beta2) * g * g if state else (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    new_w = w - lr * m_hat / (v_hat.sqrt() + eps)
    return new_w, {"t": t, "m": m, "v": v}
    ### END SOLUTION


# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_adam_step", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
# adam_step: the same steps as torch.optim.Adam (run here) over several calls threaded from {}, with the usual slips named


def adam_reference(w0, grads, lr, betas, eps):
    p = torch.nn.Parameter(w0.detach().to(torch.float64).clone())
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    out = []
    for g in grads:
        p.grad = g.detach().to(torch.float64).clone()
        opt.step()
        out.append(p.detach().clone())
    return out


def adam_slip(w0, grads, lr, betas, eps, kind):
    """The iterates of a usual slip, computed by the test."""
    b1, b2 = betas
    w = w0.detach().to(torch.float64).clone()
    m, v, out = torch.zeros_like(w), torch.zeros_like(w), []
    for k, g in enumerate(grads, start=1):
        g = g.to(torch.float64)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        t = 1 if kind == "t_stuck" else k
        mhat, vhat = (m, v) if kind == "no_bias" else (m / (1 - b1**t), v / (1 - b2**t))
        denom = (vhat + eps).sqrt() if kind == "eps_inside" else vhat.sqrt() + eps
        w = w - lr * mhat / denom
        out.append(w.clone())
    return out


ADAM_SLIPS = {
    "no_bias": ("the bias correction is missing: use mhat = m / (1 - b1^t) and vhat = v / (1 - b2^t)",
                "adam_bias_correction"),
    "eps_inside": ("eps is inside the square root; torch.optim.Adam divides by sqrt(vhat) + eps", "adam_eps_inside"),
    "t_stuck": ("the bias correction uses t = 1 at every step: t must grow by one at each call (read it from the "
                "state, add 1, store it back)", "adam_step_count"),
}


def student_adam(*args, **kwargs):
    return checks.call(gd_checks.without_optim, adam_step, *args, name="adam_step", **kwargs,
                       refusal="adam_step created a torch.optim optimizer ({optimizer}); write the update by hand "
                               "(diagnosis: policy)")


def check_adam(w0, grads, lr, betas, eps, label):
    reference = adam_reference(w0, grads, lr, betas, eps)
    state, w = {}, w0.clone()
    for k, g in enumerate(grads, start=1):
        out = student_adam(w.clone(), g.clone(), state, lr=lr, betas=betas, eps=eps)
        name = f"adam_step{label}, step {k}"
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise AssertionError(f"{name}: adam_step must return the pair (new_w, new_state), new_state a dict; got "
                                 f"{type(out).__name__} (diagnosis: wrong_return)")
        new_w, state = out
        # m and v went through k steps: the rule for w0's dtype with steps=k
        mismatch = checks.compare(new_w, reference[k - 1].to(w0.dtype), dtype=w0.dtype, steps=k)
        if mismatch is None and isinstance(new_w, torch.Tensor):  # also compare the step itself, more sharply
            mismatch = checks.compare((new_w.detach().to(torch.float64) - w.to(torch.float64)).to(w0.dtype),
                                      (reference[k - 1] - w.to(torch.float64)).to(w0.dtype), steps=k)
        if mismatch is not None:
            if isinstance(new_w, torch.Tensor) and k == 1 and not bool(torch.isfinite(new_w).all()):
                raise AssertionError(
                    f"{name}: new_w is not finite after the first step. With t = 0 the bias correction divides by "
                    "1 - b1^0 = 0: t counts the steps taken, so it is 1 at the first step (diagnosis: adam_step_count)")
            if isinstance(new_w, torch.Tensor) and new_w.shape == w0.shape and new_w.dtype == w0.dtype:
                w64 = w.to(torch.float64)
                for kind, (why, tag) in ADAM_SLIPS.items():
                    slip = adam_slip(w0, grads[:k], lr, betas, eps, kind)[-1]
                    if not checks.close(slip - w64, reference[k - 1] - w64) and checks.close(
                            new_w.detach().to(torch.float64) - w64, slip - w64, w0.dtype, steps=k):
                        raise AssertionError(f"{name}: {why} (diagnosis: {tag})")
            raise AssertionError(mismatch.message(f"{name} (new_w, compared with torch.optim.Adam)"))
        w = reference[k - 1].to(w0.dtype)  # the next step starts where Adam is: one slip costs one comparison


gen = torch.Generator().manual_seed(93)
w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
grads = [torch.tensor([0.3, -1.2, 0.05], dtype=torch.float64) * (1 + 0.5 * k) + 0.1 * torch.randn(3, generator=gen,
         dtype=torch.float64) for k in range(4)]
check_adam(w0, grads, 1e-3, (0.9, 0.999), 1e-8, "(defaults, 4 steps from {})")
check_adam(w0, [1e-3 * g for g in grads], 0.1, (0.8, 0.99), 1e-6, "(lr=0.1, betas=(0.8, 0.99), eps=1e-6, small gradients)")
### BEGIN HIDDEN TESTS
for shape, scale, eps, lr, betas in (((5,), 1e-4, 1e-8, 1e-2, (0.9, 0.999)), ((1,), 1e3, 1e-3, 0.5, (0.5, 0.9)),
                                     ((3, 4), 1.0, 0.1, 1e-3, (0.95, 0.999)), ((2,), 1e-3, 1e-5, 1.0, (0.0, 0.5))):
    w0 = torch.randn(shape, generator=gen, dtype=torch.float64)
    grads = [scale * torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(6)]
    check_adam(w0, grads, lr, betas, eps, f" (shape {shape}, gradients of size {scale:g}, eps={eps:g}, lr={lr:g}, betas={betas})")
w0 = torch.randn(4, generator=gen)
check_adam(w0, [torch.randn(4, generator=gen) for _ in range(3)], 1e-2, (0.9, 0.999), 1e-8, " (float32)")
### END HIDDEN TESTS

# %% deletable=false editable=false nbgrader={"grade": true, "grade_id": "test_adam_step_state", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# adam_step: the state it returns ('t' counts the steps, 'm' and 'v' like w) and the state, w and g it was given left unchanged


def call_adam(*args, **kwargs):
    return checks.call(gd_checks.without_optim, adam_step, *args, name="adam_step", **kwargs,
                       refusal="adam_step created a torch.optim optimizer ({optimizer}); write the update by "
                               "hand (diagnosis: policy)")


def snapshot(state):
    import copy

    return copy.deepcopy(state)


def same_state(a, b):  # the same keys, and values equal (tensors: same dtype, shape and entries)
    if set(a) != set(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dtype == y.dtype
                    and x.shape == y.shape and torch.equal(x, y)):
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True


def check_state(w0, grads, lr, betas, eps, label):
    p = torch.nn.Parameter(w0.detach().to(torch.float64).clone())
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    state, w = {}, w0.clone()
    for k, g in enumerate(grads, start=1):
        given, w_in, g_in = snapshot(state), w.clone(), g.clone()
        out = call_adam(w_in, g_in, state, lr=lr, betas=betas, eps=eps)
        name = f"adam_step{label}, step {k}"
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise AssertionError(f"{name}: return the pair (new_w, new_state) (diagnosis: wrong_return)")
        if not same_state(state, given):
            raise AssertionError(
                f"{name}: the state passed in was changed by the call (its 't', or the tensors 'm'/'v' updated in place "
                "with mul_, add_, -=, or the dict itself updated). Build a new dict with new tensors: the caller may "
                "still need the old state (diagnosis: modified_input)")
        if not (torch.equal(w_in, w) and torch.equal(g_in, g)):
            raise AssertionError(f"{name}: w or g was changed in place; compute new tensors (diagnosis: modified_input)")
        new_w, new_state = out
        missing = [key for key in ("t", "m", "v") if key not in new_state]
        if missing:
            raise AssertionError(f"{name}: the new state has no {missing}; it holds 't', 'm' and 'v' "
                                 "(diagnosis: wrong_return)")
        t = new_state["t"]
        if isinstance(t, bool) or not isinstance(t, int):
            raise AssertionError(f"{name}: new_state['t'] must be a Python int, got {type(t).__name__} "
                                 "(diagnosis: wrong_dtype)")
        if t != k:
            raise AssertionError(
                f"{name}: new_state['t'] = {t}, expected {k}: 't' counts the steps taken, 1 after the first step "
                "(like torch.optim.Adam's state['step']) (diagnosis: adam_step_count)")
        p.grad = g.detach().to(torch.float64).clone()
        opt.step()
        adam_state = opt.state[p]
        checks.assert_close(new_state["m"], adam_state["exp_avg"].to(w0.dtype), name=f"{name}: new_state['m']",
                            dtype=w0.dtype)
        checks.assert_close(new_state["v"], adam_state["exp_avg_sq"].to(w0.dtype), name=f"{name}: new_state['v']",
                            dtype=w0.dtype)
        state, w = new_state, new_w


gen = torch.Generator().manual_seed(94)
check_state(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64),
            [torch.randn(3, generator=gen, dtype=torch.float64) for _ in range(3)], 1e-2, (0.9, 0.999), 1e-8, "")
### BEGIN HIDDEN TESTS
check_state(torch.randn(2, 3, generator=gen, dtype=torch.float64),
            [1e-3 * torch.randn(2, 3, generator=gen, dtype=torch.float64) for _ in range(5)], 0.1, (0.5, 0.9), 1e-3,
            " (a (2, 3) w)")
check_state(torch.randn(1, generator=gen), [torch.randn(1, generator=gen) for _ in range(2)], 1e-3, (0.9, 0.999), 1e-8,
            " (float32, D=1)")
### END HIDDEN TESTS

# %% [markdown]
# What does the rescaling buy? On the valley with $\kappa = 100$ lined up with the axes, Adam's per-coordinate
# division undoes most of the conditioning: the flat coordinate gets steps as large as the steep one.
# Rotate the same valley by 45 degrees and each coordinate mixes both directions: Adam cannot tell
# them apart any more. (A constant `lr` happens to be enough here; with noisy mini-batch gradients Adam
# hovers at a distance of the order of `lr` from the minimum, and in practice the learning rate is
# decreased over time.)
# Last, the steps do not depend on the scale of the loss: the first step is `lr` times the sign of the
# gradient, whatever its size.

# %%
with needs("adam_step", "quadratic_grad"):
    fig, ax = plots.new_figure(size=(5.4, 3.6))
    for angle in (0.0, 45.0):
        A_adam = gd_figures.quadratic_matrix(0.01, 1.0, angle)
        w, state, distances = start_2d.clone(), {}, [start_2d.norm().item()]
        for _ in range(300):
            w, state = adam_step(w, quadratic_grad(w, A_adam, b_zero), state, lr=0.05)
            distances.append(w.norm().item())
        ax.semilogy(distances, label=f"Adam, lr = 0.05, valley at {angle:g}°")
    ax.set_xlabel("step t")
    ax.set_ylabel("distance to the minimum")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    display(fig)
    for scale in (1.0, 1000.0):
        first, _ = adam_step(start_2d, scale * quadratic_grad(start_2d, A_valley, b_zero), {}, lr=0.05)
        print(f"loss multiplied by {scale:6.0f}: first Adam step {[round(v, 6) for v in (first - start_2d).tolist()]}")


# %% [markdown]
# ## 10. Written answers
#
# Answer in a few sentences, in your own words; a person reads and grades these. Equations are
# welcome but not required.
#
# **Question 1.** Rémy Sun's lecture writes the mini-batch gradient as an **average**,
# $\frac{1}{\#B}\sum_{k} \nabla_\theta \ell(f_\theta(x_k), y_k)$, and section 9.3 kept the step $\eta$ fixed
# while the batch size went from 1 to 256. Why does averaging the loss over the batch (rather than
# summing it) make a good step size independent of the batch size? What would happen to the runs of
# section 9.3 with a summed loss and the same $\eta$?

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_batch_mean", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# The average of $B$ per-example gradients estimates the gradient of the full (average) loss whatever
# $B$ is: its expected value is the same, only its noise shrinks (variance $\propto 1/B$). So the curvature
# the step has to respect, and with it the stable range $\eta < 2/\lambda_{\max}$, does not depend on $B$:
# one $\eta$ works for every batch size. A summed loss multiplies the gradient (and the Hessian) by $B$,
# so the effective step becomes $B\eta$: with $\eta = 0.05$ the runs with $B = 64$ or $256$ would have
# $B\eta\lambda_{\max} \gg 2$ and diverge, and the step would have to be retuned (divided by $B$) every time the
# batch size changes.
# ### END SOLUTION

# %% [markdown]
# **Question 2.** Explain, with the picture of a long narrow valley and the rates of sections 7 and 9.2,
# why momentum helps on an ill-conditioned problem, and why it does not help (much) when
# $\kappa$ is close to 1.

# %% [markdown] deletable=false nbgrader={"grade": true, "grade_id": "answer_momentum", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
# ### BEGIN SOLUTION
# Without momentum the step must stay below $2/\lambda_{\max}$ for the steep directions, so along the flat
# ones the error only shrinks by $1 - \eta\lambda_{\min} \approx 1 - 2/\kappa$ per step: the iterates crawl along the
# valley floor, and the number of steps grows like $\kappa$. With momentum the velocity accumulates the
# gradients: along the flat direction they keep the same sign and add up (the effective step becomes
# about $\eta/(1-\beta)$), while across the valley they flip sign and cancel. The heavy ball can
# therefore take a larger step without diverging (up to $2(1+\beta)/\lambda_{\max}$) and the best rate becomes
# $(\sqrt\kappa - 1)/(\sqrt\kappa + 1)$, so the number of steps grows like $\sqrt\kappa$: 10 times fewer for
# $\kappa = 100$. When $\kappa \approx 1$ there is no slow direction: gradient descent with the best step is already
# fast (rate $(\kappa-1)/(\kappa+1) \approx 0$), and momentum has little left to gain.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# * The gradient is the direction of steepest ascent; a gradient step minimises the local model
#   $\mathcal{L}(w_0) + \nabla\mathcal{L}(w_0)\cdot(w - w_0) + \|w - w_0\|^2/(2\eta)$, a bowl of curvature $1/\eta$.
#   When that curvature is at least the largest curvature $L$ of the loss ($\eta \le 1/L$), every step
#   goes down.
# * Central finite differences check any gradient, with an error of order $\epsilon^2$, in float64.
# * On a quadratic, the error along eigenvector $i$ is multiplied by $1 - \eta\lambda_i$ per step: monotone
#   up to $1/\lambda_{\max}$, oscillating up to $2/\lambda_{\max}$, divergent from there. The best constant
#   step $2/(\lambda_{\min}+\lambda_{\max})$ gives the rate $(\kappa-1)/(\kappa+1)$, so the number of steps
#   grows with the condition number.
# * Training a network is the same loop: forward, loss, `backward`, and `p -= eta * p.grad` for every
#   parameter.
# * The heavy ball adds a velocity; its rate is the spectral radius of a $2\times2$ matrix per direction,
#   and with the best momentum it is $(\sqrt\kappa-1)/(\sqrt\kappa+1)$: steps grow like $\sqrt\kappa$.
# * Mini-batch gradients are noisy: with a constant step the loss stops at a floor proportional to $\eta/B$.
# * Adam divides each coordinate's step by a running root mean square of its gradients, which makes it
#   insensitive to the scale of the loss and helps when the badly scaled directions are the coordinate axes.
#
# ## Sources and further reading
#
# * François Fleuret, *Deep Learning #3 – MLP, backprop, autograd*, IfI Summer School 2018 on Machine
#   Learning (fleuret.org/ifi). Gradient descent from the local quadratic model, the steps 0.125 and
#   0.5, the "5 against the rest" network and its training log: sections 1 to 5 and 8.
# * Rémy Sun, *Lecture 9: Backpropagation*, Optimization for data sciences, Université Côte d'Azur.
#   Gradient descent under an L-smoothness assumption, the mini-batch gradient as an average: sections 3
#   and 9.3, question 1.
# * *Applied Deep Learning: Training Neural Networks* (the transcript names no lecturer). Gradient descent
#   $x_{n+1} = x_n - \gamma_n \nabla F(x_n)$, "step size or learning rate": section 4.
# * Gabriel Goh, *Why Momentum Really Works*, Distill, 2017 (distill.pub/2017/momentum). The heavy ball
#   in the form used here, its $2\times2$ iteration matrix, the phase diagram and the $\sqrt\kappa$ law.
# * Diederik P. Kingma and Jimmy Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015
#   (arXiv:1412.6980). The update and its bias correction.
# * Boris T. Polyak, *Some methods of speeding up the convergence of iteration methods*, USSR
#   Computational Mathematics and Mathematical Physics 4(5), 1964. The heavy-ball method and its best
#   parameters.
# * For the descent lemma and the rates of gradient descent on smooth convex functions: Yurii Nesterov,
#   *Introductory Lectures on Convex Optimization*, 2004, chapter 2.
