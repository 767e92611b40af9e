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
