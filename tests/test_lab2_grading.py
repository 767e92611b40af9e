"""Lab 2's grade cells judge the property each exercise asks for, not the shape of one solution.

Other correct ways to write each answer (including the lecture's own training loop) must pass every
grade cell; the usual mistakes must fail with a message that names them. The public checks alone
must already catch the most common mistakes.
"""

from __future__ import annotations

import pytest
import torch

from tests.helpers.gradecells import run_all_for, run_grade_cell

AID = "lab2_gradient_descent"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The networks here are tiny; several threads on a busy machine only slow them down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- other correct answers -------------------------------------------------------------------------

CORRECT = {
    "numerical_gradient": {
        "restore_in_place": """
            def numerical_gradient(f, w, eps=1e-6):
                g = torch.zeros_like(w)
                for i in range(len(w)):
                    old = w[i].item()
                    w[i] = old + eps
                    up = f(w)
                    w[i] = old - eps
                    down = f(w)
                    w[i] = old
                    g[i] = (up - down) / (2 * eps)
                return g
        """,
        "stacked_rows": """
            def numerical_gradient(f, w, eps=1e-6):
                shifts = eps * torch.eye(w.numel(), dtype=w.dtype)
                plus = torch.stack([f(w + s) for s in shifts])
                minus = torch.stack([f(w - s) for s in shifts])
                return (plus - minus) / (2 * eps)
        """,
        "vmap": """
            def numerical_gradient(f, w, eps=1e-6):
                shifts = eps * torch.eye(w.numel(), dtype=w.dtype)
                batched = torch.func.vmap(f)
                return (batched(w + shifts) - batched(w - shifts)) / (2 * eps)
        """,
    },
    "local_quadratic_model": {
        "func_grad_floats": """
            def local_quadratic_model(loss_fn, w0, eta):
                base = w0.clone()
                value = float(loss_fn(base))
                slope = torch.func.grad(loss_fn)(base)
                def m(w):
                    return value + torch.dot(slope, w - base) + torch.sum((w - base) ** 2) / (2 * eta)
                return m
        """,
        "recomputes_every_call": """
            def local_quadratic_model(loss_fn, w0, eta):
                def m(w):
                    x = w0.detach().clone().requires_grad_()
                    loss = loss_fn(x)
                    loss.backward()
                    d = w - w0
                    return loss.detach() + (x.grad * d).sum() + d.pow(2).sum() / 2 / eta
                return m
        """,
    },
    "gradient_descent": {
        "list_and_stack": """
            def gradient_descent(grad_fn, w0, eta, nb_steps):
                ws = [w0]
                for _ in range(nb_steps):
                    ws.append(ws[-1] - eta * grad_fn(ws[-1]))
                return torch.stack(ws)
        """,
        "clone_in_place": """
            def gradient_descent(grad_fn, w0, eta, nb_steps):
                w = w0.clone()
                rows = [w.clone()]
                for _ in range(nb_steps):
                    w -= eta * grad_fn(w)
                    rows.append(w.clone())
                return torch.stack(rows, dim=0)
        """,
        "cat_rows": """
            def gradient_descent(grad_fn, w0, eta, nb_steps):
                out = w0.reshape(1, -1).clone()
                for _ in range(nb_steps):
                    out = torch.cat([out, (out[-1] - eta * grad_fn(out[-1]))[None]])
                return out
        """,
    },
    "quadratic_loss": {
        "dot": """
            def quadratic_loss(w, A, b):
                return 0.5 * torch.dot(w, A @ w) - torch.dot(b, w)
        """,
        "einsum": """
            def quadratic_loss(w, A, b):
                return torch.einsum("i,ij,j->", w, A, w) / 2 - (b * w).sum()
        """,
    },
    "quadratic_grad": {
        "symmetrised": """
            def quadratic_grad(w, A, b):
                return 0.5 * (A + A.T) @ w - b
        """,
        "mv": """
            def quadratic_grad(w, A, b):
                return torch.mv(A, w) - b
        """,
    },
    "max_stable_step": {
        "eigh": """
            def max_stable_step(A):
                values, _ = torch.linalg.eigh(A)
                return float(2 / values[-1])
        """,
        "eigvals_real": """
            def max_stable_step(A):
                return 2 / torch.linalg.eigvals(A).real.max().item()
        """,
        # lambda_max by power iteration in A's dtype: its Rayleigh quotient is right to A's precision
        "power_iteration": """
            def max_stable_step(A):
                v = torch.ones(A.shape[0], dtype=A.dtype) + torch.arange(A.shape[0], dtype=A.dtype) / 10
                for _ in range(500):
                    v = A @ v
                    v = v / v.norm()
                return 2 / (v @ A @ v).item()
        """,
    },
    "best_constant_step": {
        "eigh": """
            def best_constant_step(A):
                values = torch.linalg.eigh(A).eigenvalues
                return float(2 / (values.min() + values.max()))
        """,
    },
    "step_regime": {
        "thresholds_on_lambda_max": """
            def step_regime(A, eta):
                lam_max = torch.linalg.eigvalsh(A).max().item()
                if eta * lam_max >= 2:
                    return "divergent"
                if eta * lam_max > 1:
                    return "oscillating"
                return "monotone"
        """,
        "python_loop": """
            def step_regime(A, eta):
                factors = [1 - eta * lam for lam in torch.linalg.eigh(A)[0].tolist()]
                if max(abs(f) for f in factors) >= 1:
                    return "divergent"
                return "oscillating" if min(factors) < 0 else "monotone"
        """,
    },
    "train_mlp_gd": {
        "lecture_loop": """
            def train_mlp_gd(x, y, nb_steps, eta):
                model = nn.Sequential(nn.Linear(x.size(1), 200), nn.ReLU(), nn.Linear(200, 1))
                losses = []
                for k in range(nb_steps):
                    yhat = model(x).view(-1)
                    loss = (yhat - y).pow(2).mean()
                    losses.append(loss.item())
                    model.zero_grad()
                    loss.backward()
                    for p in model.parameters(): p.detach().sub_(eta * p.grad)
                return model, losses
        """,
        "data_update_manual_zero": """
            def train_mlp_gd(x, y, nb_steps, eta):
                model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
                losses = []
                for _ in range(nb_steps):
                    loss = torch.mean((model(x).view(-1) - y) ** 2)
                    loss.backward()
                    losses.append(float(loss.detach()))
                    for p in model.parameters():
                        p.data -= eta * p.grad
                        p.grad.zero_()
                return model, losses
        """,
        "extra_logging_forward": """
            def train_mlp_gd(x, y, nb_steps, eta):
                model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
                losses = []
                for _ in range(nb_steps):
                    with torch.no_grad():
                        losses.append(((model(x).squeeze(1) - y) ** 2).mean().item())
                    model.zero_grad()
                    ((model(x).squeeze(1) - y) ** 2).mean().backward()
                    with torch.no_grad():
                        for p in model.parameters():
                            p.sub_(eta * p.grad)
                return model, losses
        """,
    },
    "momentum_descent": {
        "polyak_two_term": """
            def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
                ws = [w0.clone()]
                previous = w0.clone()
                for t in range(nb_steps):
                    w = ws[-1]
                    ws.append(w - eta * grad_fn(w) + beta * (w - previous))
                    previous = w
                return torch.stack(ws)
        """,
        "in_place_buffer": """
            def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
                w = w0.clone()
                buf = torch.zeros_like(w)
                out = [w.clone()]
                for _ in range(nb_steps):
                    buf.mul_(beta).add_(grad_fn(w))
                    w.sub_(eta * buf)
                    out.append(w.clone())
                return torch.stack(out, dim=0)
        """,
        "preallocated_float64_and_float32": """
            def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
                out = w0.new_zeros((nb_steps + 1, w0.shape[0]))
                out[0] = w0
                z = w0.new_zeros(w0.shape)
                for t in range(nb_steps):
                    z = beta * z + grad_fn(out[t])
                    out[t + 1] = out[t] - eta * z
                return out
        """,
    },
    "heavy_ball_rate": {
        "closed_form_cmath": """
            def heavy_ball_rate(eigenvalues, eta, beta):
                import cmath
                worst = 0.0
                for lam in torch.as_tensor(eigenvalues, dtype=torch.float64).tolist():
                    trace = 1 + beta - eta * lam
                    root = cmath.sqrt(trace * trace - 4 * beta)
                    worst = max(worst, abs((trace + root) / 2), abs((trace - root) / 2))
                return float(worst)
        """,
        "numpy_eigvals": """
            def heavy_ball_rate(eigenvalues, eta, beta):
                import numpy as np
                lams = np.asarray(torch.as_tensor(eigenvalues, dtype=torch.float64))
                return float(max(np.abs(np.linalg.eigvals(np.array([[beta, lam], [-eta * beta, 1 - eta * lam]]))).max()
                                 for lam in lams))
        """,
        "batched_eigvals": """
            def heavy_ball_rate(eigenvalues, eta, beta):
                lam = torch.as_tensor(eigenvalues).to(torch.float64).reshape(-1)
                M = torch.empty(len(lam), 2, 2, dtype=torch.float64)
                M[:, 0, 0] = beta
                M[:, 0, 1] = lam
                M[:, 1, 0] = -eta * beta
                M[:, 1, 1] = 1 - eta * lam
                return torch.linalg.eigvals(M).abs().max().item()
        """,
        "extremes_only": """
            def heavy_ball_rate(eigenvalues, eta, beta):
                lams = [float(v) for v in eigenvalues]
                def rho(lam):
                    M = torch.tensor([[beta, lam], [-eta * beta, 1 - eta * lam]], dtype=torch.float64)
                    return torch.linalg.eigvals(M).abs().max().item()
                return max(rho(min(lams)), rho(max(lams)))
        """,
    },
    "adam_step": {
        "torch_arithmetic": """
            def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
                b1, b2 = betas
                step = state.get("t", 0) + 1
                m = state["m"].clone() if "m" in state else torch.zeros_like(w)
                v = state["v"].clone() if "v" in state else torch.zeros_like(w)
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                bc1, bc2 = 1 - b1**step, 1 - b2**step
                denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
                new_w = w.clone().addcdiv_(m, denom, value=-lr / bc1)
                return new_w, {"t": step, "m": m, "v": v}
        """,
        "deepcopy_then_in_place": """
            def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
                import copy
                s = copy.deepcopy(state) if state else {"t": 0, "m": torch.zeros_like(w), "v": torch.zeros_like(w)}
                s["t"] += 1
                s["m"] *= betas[0]
                s["m"] += (1 - betas[0]) * g
                s["v"] *= betas[1]
                s["v"] += (1 - betas[1]) * g ** 2
                mhat = s["m"] / (1 - betas[0] ** s["t"])
                vhat = s["v"] / (1 - betas[1] ** s["t"])
                return w - lr * mhat / (torch.sqrt(vhat) + eps), s
        """,
        "extra_keys_kept": """
            def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
                t = 1 + state.get("t", 0)
                m = betas[0] * state.get("m", 0 * w) + (1 - betas[0]) * g
                v = betas[1] * state.get("v", 0 * w) + (1 - betas[1]) * g.pow(2)
                update = (m / (1 - betas[0] ** t)) / ((v / (1 - betas[1] ** t)).sqrt() + eps)
                return w - lr * update, {**state, "t": t, "m": m, "v": v, "lr": lr}
        """,
    },
    "predicted_regime": {
        "the_right_prediction": """
            with needs("predicted_regime"):
                predicted_regime = "oscillating"
        """,
    },
}


@pytest.mark.parametrize(
    "solution_id, variant",
    [(sid, name) for sid, variants in CORRECT.items() for name in variants],
)
def test_alternative_correct_answer_passes_every_grade_cell(solution_id, variant):
    outcomes = run_all_for(AID, solution_id, CORRECT[solution_id][variant])
    failed = {g: o.message for g, o in outcomes.items() if not o}
    assert not failed, f"{solution_id} ({variant}) should pass:\n{failed}"


# --- usual mistakes --------------------------------------------------------------------------------

# (solution id, mistake name, source, a piece of text the first failure message must contain,
#  whether the public checks alone must catch it)
MISTAKES = [
    ("numerical_gradient", "forward_difference", """
        def numerical_gradient(f, w, eps=1e-6):
            g = torch.empty_like(w)
            for i in range(len(w)):
                e = torch.zeros_like(w)
                e[i] = eps
                g[i] = (f(w + e) - f(w)) / eps
            return g
    """, "diagnosis: forward_difference", True),
    ("numerical_gradient", "divides_by_eps", """
        def numerical_gradient(f, w, eps=1e-6):
            g = torch.empty_like(w)
            for i in range(len(w)):
                e = torch.zeros_like(w)
                e[i] = eps
                g[i] = (f(w + e) - f(w - e)) / eps
            return g
    """, "diagnosis: scaled", True),
    ("numerical_gradient", "ignores_eps", """
        def numerical_gradient(f, w, eps=1e-6):
            g = torch.empty_like(w)
            for i in range(len(w)):
                e = torch.zeros_like(w)
                e[i] = 1e-6
                g[i] = (f(w + e) - f(w - e)) / 2e-6
            return g
    """, "eps=0.5", True),
    ("numerical_gradient", "modifies_w", """
        def numerical_gradient(f, w, eps=1e-6):
            g = torch.empty_like(w)
            for i in range(len(w)):
                w[i] += eps
                up = f(w)
                w[i] -= 2 * eps
                g[i] = (up - f(w)) / (2 * eps)
            return g
    """, "diagnosis: modified_input", True),
    ("numerical_gradient", "float32_result", """
        def numerical_gradient(f, w, eps=1e-6):
            g = torch.zeros(len(w))
            for i in range(len(w)):
                e = torch.zeros_like(w)
                e[i] = eps
                g[i] = (f(w + e) - f(w - e)) / (2 * eps)
            return g
    """, "diagnosis: wrong_dtype", True),
    ("local_quadratic_model", "eta_in_numerator", """
        def local_quadratic_model(loss_fn, w0, eta):
            x = w0.clone().requires_grad_(True)
            loss = loss_fn(x)
            (g,) = torch.autograd.grad(loss, x)
            return lambda w: loss.detach() + g @ (w - w0) + eta * ((w - w0) ** 2).sum() / 2
    """, "diagnosis: local_model_curvature", True),
    ("local_quadratic_model", "no_constant_term", """
        def local_quadratic_model(loss_fn, w0, eta):
            x = w0.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_fn(x), x)
            return lambda w: g @ (w - w0) + ((w - w0) ** 2).sum() / (2 * eta)
    """, "m(w0)", True),
    ("local_quadratic_model", "returns_value_not_function", """
        def local_quadratic_model(loss_fn, w0, eta):
            return loss_fn(w0)
    """, "diagnosis: not_callable", True),
    ("gradient_descent", "ascent", """
        def gradient_descent(grad_fn, w0, eta, nb_steps):
            ws = [w0]
            for _ in range(nb_steps):
                ws.append(ws[-1] + eta * grad_fn(ws[-1]))
            return torch.stack(ws)
    """, "diagnosis: sign", True),
    ("gradient_descent", "last_iterate_only", """
        def gradient_descent(grad_fn, w0, eta, nb_steps):
            w = w0.clone()
            for _ in range(nb_steps):
                w = w - eta * grad_fn(w)
            return w
    """, "diagnosis: last_only", True),
    ("gradient_descent", "without_w0", """
        def gradient_descent(grad_fn, w0, eta, nb_steps):
            ws, w = [], w0
            for _ in range(nb_steps):
                w = w - eta * grad_fn(w)
                ws.append(w)
            return torch.stack(ws)
    """, "diagnosis: missing_w0", True),
    ("gradient_descent", "aliased_rows", """
        def gradient_descent(grad_fn, w0, eta, nb_steps):
            w = w0.clone()
            ws = [w]
            for _ in range(nb_steps):
                w -= eta * grad_fn(w)
                ws.append(w)
            return torch.stack(ws)
    """, "diagnosis: aliasing", True),
    ("gradient_descent", "updates_w0_in_place", """
        def gradient_descent(grad_fn, w0, eta, nb_steps):
            ws = [w0.clone()]
            for _ in range(nb_steps):
                w0 -= eta * grad_fn(w0)
                ws.append(w0.clone())
            return torch.stack(ws)
    """, "diagnosis: modified_input", True),
    ("gradient_descent", "float32_buffer", """
        def gradient_descent(grad_fn, w0, eta, nb_steps):
            out = torch.zeros(nb_steps + 1, len(w0))
            out[0] = w0
            for t in range(nb_steps):
                out[t + 1] = out[t] - eta * grad_fn(out[t])
            return out
    """, "diagnosis: wrong_dtype", True),
    ("quadratic_loss", "no_half", """
        def quadratic_loss(w, A, b):
            return w @ A @ w - b @ w
    """, "quadratic_loss", True),
    ("quadratic_grad", "plus_b", """
        def quadratic_grad(w, A, b):
            return A @ w + b
    """, "quadratic_grad", True),
    ("max_stable_step", "tensor_result", """
        def max_stable_step(A):
            return 2 / torch.linalg.eigvalsh(A).max()
    """, "diagnosis: wrong_dtype", True),
    ("max_stable_step", "one_over_lambda_max", """
        def max_stable_step(A):
            return 1 / torch.linalg.eigvalsh(A).max().item()
    """, "diagnosis: scaled", True),
    ("max_stable_step", "lambda_min", """
        def max_stable_step(A):
            return 2 / torch.linalg.eigvalsh(A).min().item()
    """, "diagnosis: lambda_min", True),
    ("best_constant_step", "tensor_result", """
        def best_constant_step(A):
            lam = torch.linalg.eigvalsh(A)
            return 2 / (lam[0] + lam[-1])
    """, "diagnosis: wrong_dtype", True),
    ("best_constant_step", "one_over_sum", """
        def best_constant_step(A):
            lam = torch.linalg.eigvalsh(A)
            return 1 / (lam[0] + lam[-1]).item()
    """, "diagnosis: scaled", True),
    ("step_regime", "strict_divergent_border", """
        def step_regime(A, eta):
            factors = 1 - eta * torch.linalg.eigvalsh(A)
            if factors.abs().max() > 1:
                return "divergent"
            if (factors < 0).any():
                return "oscillating"
            return "monotone"
    """, "diagnosis: border", True),
    ("step_regime", "oscillating_at_zero_factor", """
        def step_regime(A, eta):
            factors = 1 - eta * torch.linalg.eigvalsh(A)
            if factors.abs().max() >= 1:
                return "divergent"
            if (factors <= 0).any():
                return "oscillating"
            return "monotone"
    """, "diagnosis: border", True),
    ("step_regime", "uses_lambda_min", """
        def step_regime(A, eta):
            lam = torch.linalg.eigvalsh(A).min().item()
            if eta * lam >= 2:
                return "divergent"
            return "oscillating" if eta * lam > 1 else "monotone"
    """, "step_regime", True),
    ("train_mlp_gd", "torch_optim_sgd", """
        def train_mlp_gd(x, y, nb_steps, eta):
            model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
            opt = torch.optim.SGD(model.parameters(), lr=eta)
            losses = []
            for _ in range(nb_steps):
                loss = ((model(x).view(-1) - y) ** 2).mean()
                losses.append(loss.item())
                opt.zero_grad()
                loss.backward()
                opt.step()
            return model, losses
    """, "diagnosis: policy", True),
    ("train_mlp_gd", "no_relu", """
        def train_mlp_gd(x, y, nb_steps, eta):
            model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.Linear(200, 1))
            losses = []
            for _ in range(nb_steps):
                loss = ((model(x).view(-1) - y) ** 2).mean()
                losses.append(loss.item())
                model.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for p in model.parameters():
                        p -= eta * p.grad
            return model, losses
    """, "diagnosis: architecture", True),
    ("train_mlp_gd", "ascent", """
        def train_mlp_gd(x, y, nb_steps, eta):
            model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
            losses = []
            for _ in range(nb_steps):
                loss = ((model(x).view(-1) - y) ** 2).mean()
                losses.append(loss.item())
                model.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for p in model.parameters():
                        p += eta * p.grad
            return model, losses
    """, "diagnosis: sign", True),
    ("train_mlp_gd", "grad_never_zeroed", """
        def train_mlp_gd(x, y, nb_steps, eta):
            model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
            losses = []
            for _ in range(nb_steps):
                loss = ((model(x).view(-1) - y) ** 2).mean()
                losses.append(loss.item())
                loss.backward()
                with torch.no_grad():
                    for p in model.parameters():
                        p -= eta * p.grad
            return model, losses
    """, "diagnosis: grad_not_zeroed", True),
    ("train_mlp_gd", "broadcast_loss", """
        def train_mlp_gd(x, y, nb_steps, eta):
            model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
            losses = []
            for _ in range(nb_steps):
                loss = ((model(x) - y) ** 2).mean()
                losses.append(loss.item())
                model.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for p in model.parameters():
                        p -= eta * p.grad
            return model, losses
    """, "diagnosis: broadcast", True),
    ("train_mlp_gd", "loss_tensors", """
        def train_mlp_gd(x, y, nb_steps, eta):
            model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
            losses = []
            for _ in range(nb_steps):
                loss = ((model(x).view(-1) - y) ** 2).mean()
                losses.append(loss)
                model.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for p in model.parameters():
                        p -= eta * p.grad
            return model, losses
    """, "diagnosis: wrong_dtype", True),
    ("train_mlp_gd", "weights_only", """
        def train_mlp_gd(x, y, nb_steps, eta):
            model = nn.Sequential(nn.Linear(x.shape[1], 200), nn.ReLU(), nn.Linear(200, 1))
            losses = []
            for _ in range(nb_steps):
                loss = ((model(x).view(-1) - y) ** 2).mean()
                losses.append(loss.item())
                model.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for name, p in model.named_parameters():
                        if name.endswith("weight"):
                            p -= eta * p.grad
            return model, losses
    """, "diagnosis: zero", True),
    ("momentum_descent", "z_updated_after_w", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            w, z, ws = w0.clone(), torch.zeros_like(w0), [w0.clone()]
            for _ in range(nb_steps):
                g = grad_fn(w)
                w = w - eta * z
                z = beta * z + g
                ws.append(w)
            return torch.stack(ws)
    """, "diagnosis: momentum_order", True),
    ("momentum_descent", "ema_velocity", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            w, z, ws = w0.clone(), torch.zeros_like(w0), [w0.clone()]
            for _ in range(nb_steps):
                z = beta * z + (1 - beta) * grad_fn(w)
                w = w - eta * z
                ws.append(w)
            return torch.stack(ws)
    """, "diagnosis: momentum_ema", True),
    ("momentum_descent", "beta_on_w", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            ws = [w0.clone()]
            for _ in range(nb_steps):
                ws.append(beta * ws[-1] - eta * grad_fn(ws[-1]))
            return torch.stack(ws)
    """, "diagnosis: momentum_on_w", True),
    ("momentum_descent", "velocity_from_w", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            ws = [w0.clone()]
            for _ in range(nb_steps):
                z = beta * ws[-1] + grad_fn(ws[-1])
                ws.append(ws[-1] - eta * z)
            return torch.stack(ws)
    """, "diagnosis: momentum_on_w", True),
    ("momentum_descent", "beta_ignored", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            ws = [w0.clone()]
            for _ in range(nb_steps):
                ws.append(ws[-1] - eta * grad_fn(ws[-1]))
            return torch.stack(ws)
    """, "diagnosis: momentum_ignored", True),
    ("momentum_descent", "last_iterate_only", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            w, z = w0.clone(), torch.zeros_like(w0)
            for _ in range(nb_steps):
                z = beta * z + grad_fn(w)
                w = w - eta * z
            return w
    """, "diagnosis: last_only", True),
    ("momentum_descent", "float32_buffer", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            out = torch.zeros(nb_steps + 1, len(w0))
            out[0] = w0
            z = torch.zeros(len(w0))
            for t in range(nb_steps):
                z = beta * z + grad_fn(out[t])
                out[t + 1] = out[t] - eta * z
            return out
    """, "diagnosis: wrong_dtype", True),
    ("momentum_descent", "updates_w0_in_place", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            z, ws = torch.zeros_like(w0), [w0.clone()]
            for _ in range(nb_steps):
                z = beta * z + grad_fn(w0)
                w0 -= eta * z
                ws.append(w0.clone())
            return torch.stack(ws)
    """, "diagnosis: modified_input", True),
    ("momentum_descent", "torch_optim_sgd", """
        def momentum_descent(grad_fn, w0, eta, beta, nb_steps):
            p = torch.nn.Parameter(w0.clone())
            opt = torch.optim.SGD([p], lr=eta, momentum=beta)
            ws = [w0.clone()]
            for _ in range(nb_steps):
                p.grad = grad_fn(p.detach().clone())
                opt.step()
                ws.append(p.detach().clone())
            return torch.stack(ws)
    """, "diagnosis: policy", True),
    ("heavy_ball_rate", "float32_matrix", """
        def heavy_ball_rate(eigenvalues, eta, beta):
            return max(torch.linalg.eigvals(torch.tensor([[beta, lam], [-eta * beta, 1 - eta * lam]])).abs().max().item()
                       for lam in torch.as_tensor(eigenvalues).tolist())
    """, "diagnosis: wrong_dtype", True),
    ("heavy_ball_rate", "assumes_sorted", """
        def heavy_ball_rate(eigenvalues, eta, beta):
            lams = torch.as_tensor(eigenvalues, dtype=torch.float64)
            def rho(lam):
                M = torch.tensor([[beta, lam], [-eta * beta, 1 - eta * lam]], dtype=torch.float64)
                return torch.linalg.eigvals(M).abs().max().item()
            return max(rho(lams[0].item()), rho(lams[-1].item()))
    """, "diagnosis: eigenvalues_sorted", True),
    ("heavy_ball_rate", "lambda_max_only", """
        def heavy_ball_rate(eigenvalues, eta, beta):
            lam = torch.as_tensor(eigenvalues, dtype=torch.float64).max().item()
            M = torch.tensor([[beta, lam], [-eta * beta, 1 - eta * lam]], dtype=torch.float64)
            return torch.linalg.eigvals(M).abs().max().item()
    """, "diagnosis: spectral_radius", True),
    ("heavy_ball_rate", "min_over_lambdas", """
        def heavy_ball_rate(eigenvalues, eta, beta):
            return min(torch.linalg.eigvals(torch.tensor([[beta, lam], [-eta * beta, 1 - eta * lam]],
                                                         dtype=torch.float64)).abs().max().item()
                       for lam in torch.as_tensor(eigenvalues, dtype=torch.float64).tolist())
    """, "diagnosis: spectral_radius", True),
    ("heavy_ball_rate", "real_parts", """
        def heavy_ball_rate(eigenvalues, eta, beta):
            return max(torch.linalg.eigvals(torch.tensor([[beta, lam], [-eta * beta, 1 - eta * lam]],
                                                         dtype=torch.float64)).real.max().item()
                       for lam in torch.as_tensor(eigenvalues, dtype=torch.float64).tolist())
    """, "diagnosis: spectral_radius", True),
    ("heavy_ball_rate", "no_beta_in_corner", """
        def heavy_ball_rate(eigenvalues, eta, beta):
            return max(torch.linalg.eigvals(torch.tensor([[beta, lam], [-eta, 1 - eta * lam]],
                                                         dtype=torch.float64)).abs().max().item()
                       for lam in torch.as_tensor(eigenvalues, dtype=torch.float64).tolist())
    """, "diagnosis: heavy_ball_matrix", True),
    ("heavy_ball_rate", "tensor_result", """
        def heavy_ball_rate(eigenvalues, eta, beta):
            lam = torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)
            M = torch.stack([torch.stack([beta + 0 * lam, lam], -1), torch.stack([-eta * beta + 0 * lam, 1 - eta * lam], -1)], -2)
            return torch.linalg.eigvals(M).abs().max()
    """, "diagnosis: wrong_dtype", True),
    ("heavy_ball_rate", "tensors_only", """
        def heavy_ball_rate(eigenvalues, eta, beta):
            lo, hi = eigenvalues.min().item(), eigenvalues.max().item()
            return max(torch.linalg.eigvals(torch.tensor([[beta, lam], [-eta * beta, 1 - eta * lam]],
                                                         dtype=torch.float64)).abs().max().item() for lam in (lo, hi))
    """, "diagnosis: crash", True),
    ("adam_step", "no_bias_correction", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            t = state.get("t", 0) + 1
            m = betas[0] * state.get("m", torch.zeros_like(w)) + (1 - betas[0]) * g
            v = betas[1] * state.get("v", torch.zeros_like(w)) + (1 - betas[1]) * g * g
            return w - lr * m / (v.sqrt() + eps), {"t": t, "m": m, "v": v}
    """, "diagnosis: adam_bias_correction", True),
    ("adam_step", "eps_inside_sqrt", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            t = state.get("t", 0) + 1
            m = betas[0] * state.get("m", torch.zeros_like(w)) + (1 - betas[0]) * g
            v = betas[1] * state.get("v", torch.zeros_like(w)) + (1 - betas[1]) * g * g
            mhat, vhat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
            return w - lr * mhat / (vhat + eps).sqrt(), {"t": t, "m": m, "v": v}
    """, "diagnosis: adam_eps_inside", True),
    ("adam_step", "t_never_incremented", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            t = state.get("t", 1)
            m = betas[0] * state.get("m", torch.zeros_like(w)) + (1 - betas[0]) * g
            v = betas[1] * state.get("v", torch.zeros_like(w)) + (1 - betas[1]) * g * g
            mhat, vhat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
            return w - lr * mhat / (vhat.sqrt() + eps), {"t": t, "m": m, "v": v}
    """, "diagnosis: adam_step_count", True),
    ("adam_step", "t_starts_at_0", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            t = state.get("t", 0)
            m = betas[0] * state.get("m", torch.zeros_like(w)) + (1 - betas[0]) * g
            v = betas[1] * state.get("v", torch.zeros_like(w)) + (1 - betas[1]) * g * g
            mhat, vhat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
            return w - lr * mhat / (vhat.sqrt() + eps), {"t": t + 1, "m": m, "v": v}
    """, "diagnosis: adam_step_count", True),
    ("adam_step", "t_stored_zero_based", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            t = state.get("t", -1) + 1
            m = betas[0] * state.get("m", torch.zeros_like(w)) + (1 - betas[0]) * g
            v = betas[1] * state.get("v", torch.zeros_like(w)) + (1 - betas[1]) * g * g
            mhat, vhat = m / (1 - betas[0] ** (t + 1)), v / (1 - betas[1] ** (t + 1))
            return w - lr * mhat / (vhat.sqrt() + eps), {"t": t, "m": m, "v": v}
    """, "diagnosis: adam_step_count", True),
    ("adam_step", "state_updated_in_place", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            if not state:
                state.update(t=0, m=torch.zeros_like(w), v=torch.zeros_like(w))
            state["t"] += 1
            state["m"].mul_(betas[0]).add_((1 - betas[0]) * g)
            state["v"].mul_(betas[1]).add_((1 - betas[1]) * g * g)
            mhat = state["m"] / (1 - betas[0] ** state["t"])
            vhat = state["v"] / (1 - betas[1] ** state["t"])
            return w - lr * mhat / (vhat.sqrt() + eps), state
    """, "diagnosis: modified_input", True),
    ("adam_step", "tensors_updated_in_place", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            m = state["m"] if state else torch.zeros_like(w)
            v = state["v"] if state else torch.zeros_like(w)
            t = state.get("t", 0) + 1
            m.mul_(betas[0]).add_((1 - betas[0]) * g)
            v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
            mhat, vhat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
            return w - lr * mhat / (vhat.sqrt() + eps), {"t": t, "m": m, "v": v}
    """, "diagnosis: modified_input", True),
    ("adam_step", "w_updated_in_place", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            t = state.get("t", 0) + 1
            m = betas[0] * state.get("m", torch.zeros_like(w)) + (1 - betas[0]) * g
            v = betas[1] * state.get("v", torch.zeros_like(w)) + (1 - betas[1]) * g * g
            mhat, vhat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
            w -= lr * mhat / (vhat.sqrt() + eps)
            return w, {"t": t, "m": m, "v": v}
    """, "diagnosis: modified_input", True),
    ("adam_step", "uses_torch_optim", """
        def adam_step(w, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            p = torch.nn.Parameter(w.clone())
            opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
            if state:
                opt.state[p] = {"step": torch.tensor(float(state["t"])), "exp_avg": state["m"].clone(),
                                "exp_avg_sq": state["v"].clone()}
            p.grad = g.clone()
            opt.step()
            s = opt.state[p]
            return p.detach().clone(), {"t": int(s["step"]), "m": s["exp_avg"].clone(), "v": s["exp_avg_sq"].clone()}
    """, "diagnosis: policy", True),
    ("predicted_regime", "monotone", """
        with needs("predicted_regime"):
            predicted_regime = "monotone"
    """, "diagnosis: prediction", True),
    ("predicted_regime", "not_a_choice", """
        with needs("predicted_regime"):
            predicted_regime = "oscillates"
    """, "diagnosis: wrong_return", True),
]


@pytest.mark.parametrize("solution_id, mistake, source, expected, public", MISTAKES,
                         ids=[f"{m[0]}-{m[1]}" for m in MISTAKES])
def test_usual_mistake_fails_with_a_message_that_names_it(solution_id, mistake, source, expected, public):
    outcomes = run_all_for(AID, solution_id, source)
    failed = {g: o.message for g, o in outcomes.items() if not o}
    assert failed, f"{solution_id}: the mistake {mistake!r} passes every grade cell"
    assert any(expected in m for m in failed.values()), (
        f"{solution_id} ({mistake}): no failure message mentions {expected!r}:\n{failed}"
    )
    if public:
        public_outcomes = run_all_for(AID, solution_id, source, public_only=True)
        assert any(not o for o in public_outcomes.values()), (
            f"{solution_id} ({mistake}): the public checks alone do not catch it"
        )


def test_untouched_stubs_fail_every_grade_cell():
    from tests.helpers.gradecells import grade_ids, lab_cells

    _, solutions, _ = lab_cells(AID)
    stubs = {sid: src.split("### BEGIN SOLUTION")[0].rstrip(" ") + "    raise NotImplementedError()\n" for sid, src in solutions.items()}
    for gid in grade_ids(AID):
        outcome = run_grade_cell(AID, gid, stubs)
        assert not outcome, f"{gid} passes on the stubs"
        assert "not_implemented" in outcome.message, f"{gid}: {outcome.message}"
