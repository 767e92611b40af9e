"""Lab 4, "the engine learns": the grade cells of Neuron, Layer and MLP against other correct answers
(micrograd's own nn.py, loops, other draws and attribute names) and the usual mistakes."""

from __future__ import annotations

import re

import pytest
from nbgrader.utils import is_grade

from tests.helpers.gradecells import lab_cells, run_all_for, run_grade_cell

AID = "lab4_dag_autograd"
NN_CELLS = ["test_Neuron_structure", "test_Neuron_forward", "test_Layer", "test_MLP", "test_MLP_gradients"]


def solution(sid: str) -> str:
    return lab_cells(AID)[1][sid]


def mutate(sid: str, old: str, new: str) -> str:
    src = solution(sid)
    assert old in src, f"{old!r} not found in the solution of {sid}"
    return src.replace(old, new)


def stub(sid: str) -> str:
    """The solution cell as the release shows it (nbgrader's code stub in every region)."""
    return re.sub(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION",
                  r"\1# YOUR CODE HERE\n\1raise NotImplementedError()", solution(sid), flags=re.S | re.M)


def run(grade_id: str, **replace: str):
    return run_grade_cell(AID, grade_id, replace)


def assert_fails(outcome, tag: str):
    assert not outcome.passed, "the grade cell passed on a wrong answer"
    assert f"(diagnosis: {tag})" in outcome.message, outcome.message


# micrograd's nn.py, as Karpathy wrote it (a Module base class in the Neuron cell, `Value(0)` bias,
# `p.grad = 0` in zero_grad, `nonlin=i != len(nouts) - 1`).
MICROGRAD_NEURON = '''
class Module:
    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0

    def parameters(self):
        return []


class Neuron(Module):
    def __init__(self, nin, nonlin=True):
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x):
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"
'''

MICROGRAD_LAYER = '''
class Layer(Module):
    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]
'''

MICROGRAD_MLP = '''
class MLP(Module):
    def __init__(self, nin, nouts):
        sz = [nin] + nouts
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]
'''

# Loops, `1 - 2 * random.random()`, a sum started at 0 (number + Value), other attribute names,
# zero_grad walking the layers.
LOOP_NEURON = '''
class Neuron:
    def __init__(self, nin, nonlin=True):
        self.w = []
        for _ in range(nin):
            self.w.append(Value(1 - 2 * random.random()))
        self.b = Value(0.0)
        self.use_relu = nonlin

    def __call__(self, x):
        total = 0
        for i in range(len(self.w)):
            total = total + self.w[i] * x[i]
        total = total + self.b
        if self.use_relu:
            return total.relu()
        return total

    def parameters(self):
        return list(self.w) + [self.b]
'''

LOOP_LAYER = '''
class Layer:
    def __init__(self, nin, nout, **kwargs):
        self.units = []
        for _ in range(nout):
            self.units.append(Neuron(nin, **kwargs))

    def __call__(self, x):
        if len(self.units) == 1:
            return self.units[0](x)
        return [unit(x) for unit in self.units]

    def parameters(self):
        params = []
        for unit in self.units:
            params.extend(unit.parameters())
        return params
'''

LOOP_MLP = '''
class MLP:
    def __init__(self, nin, nouts):
        self.stack = []
        fan_in = nin
        for i, width in enumerate(nouts):
            self.stack.append(Layer(fan_in, width, nonlin=(i < len(nouts) - 1)))
            fan_in = width

    def __call__(self, x):
        h = x
        for layer in self.stack:
            h = layer(h)
        return h

    def parameters(self):
        out = []
        for layer in self.stack:
            out += layer.parameters()
        return out

    def zero_grad(self):
        for layer in self.stack:
            for p in layer.parameters():
                p.grad = 0.0
'''


def test_micrograd_nn_passes_every_cell():
    for grade_id in NN_CELLS:
        outcome = run(grade_id, Neuron=MICROGRAD_NEURON, Layer=MICROGRAD_LAYER, MLP=MICROGRAD_MLP)
        assert outcome, f"{grade_id}: {outcome.message}"


@pytest.mark.parametrize("sid", ["Neuron", "Layer", "MLP"])
def test_loops_and_other_names_pass(sid):
    source = {"Neuron": LOOP_NEURON, "Layer": LOOP_LAYER, "MLP": LOOP_MLP}[sid]
    for grade_id, outcome in run_all_for(AID, sid, source).items():
        assert outcome, f"{grade_id}: {outcome.message}"


def test_all_loop_versions_together_pass():
    for grade_id in NN_CELLS:
        assert run(grade_id, Neuron=LOOP_NEURON, Layer=LOOP_LAYER, MLP=LOOP_MLP), grade_id


def test_reference_passes_public_and_hidden():
    for grade_id in NN_CELLS:
        assert run_grade_cell(AID, grade_id), grade_id
        assert run_grade_cell(AID, grade_id, public_only=True), grade_id


@pytest.mark.parametrize("sid", ["Neuron", "Layer", "MLP"])
def test_untouched_stub_is_named(sid):
    for outcome in run_all_for(AID, sid, stub(sid)).values():
        assert_fails(outcome, "not_implemented")


def test_relu_on_the_last_layer_is_named():
    wrong = mutate("MLP", "nonlin=i != len(nouts) - 1", "nonlin=True")
    assert_fails(run("test_MLP", MLP=wrong), "relu_last_layer")


def test_bias_left_out_of_parameters_is_named():
    wrong = mutate("Neuron", "return self.w + [self.b]", "return self.w")
    assert_fails(run("test_Neuron_structure", Neuron=wrong), "bias_not_in_parameters")


def test_zero_grad_missing_a_layer_costs_only_the_gradient_cell():
    wrong = mutate("MLP", "        for p in self.parameters():\n            p.grad = 0.0",
                   "        for layer in self.layers[:-1]:\n            for p in layer.parameters():\n"
                   "                p.grad = 0.0")
    outcome = run("test_MLP_gradients", MLP=wrong)
    assert_fails(outcome, "zero_grad_incomplete")
    assert "layer(s) [2]" in outcome.message
    assert run("test_MLP", MLP=wrong)


def test_layer_returning_a_list_for_one_output_is_named():
    wrong = mutate("Layer", "return outs[0] if len(outs) == 1 else outs", "return outs")
    assert_fails(run("test_Layer", Layer=wrong), "single_output")
    for grade_id in ("test_MLP", "test_MLP_gradients"):  # graded with a stand-in Layer: a right MLP passes
        assert run(grade_id, Layer=wrong), grade_id


def test_weights_from_torch_are_named():
    wrong = mutate("Neuron", "Value(random.uniform(-1, 1))", "Value(torch.rand(()).item() * 2 - 1)")
    assert_fails(run("test_Neuron_structure", Neuron=wrong), "not_random_module")
    assert run("test_Neuron_forward", Neuron=wrong)


@pytest.mark.parametrize(("old", "new", "tag"), [
    ("random.uniform(-1, 1)", "random.uniform(0, 1)", "init_range"),
    ("random.uniform(-1, 1)", "0.5", "not_random_module"),
    ("self.b = Value(0.0)", "self.b = Value(random.uniform(-1, 1))", "bias_init"),
], ids=["only_positive", "constant", "random_bias"])
def test_other_initialisation_mistakes_are_named(old, new, tag):
    assert_fails(run("test_Neuron_structure", Neuron=mutate("Neuron", old, new)), tag)


@pytest.mark.parametrize(("old", "new", "tag"), [
    ("return act.relu() if self.nonlin else act", "return act", "missing_relu"),
    ("return act.relu() if self.nonlin else act", "return act.relu()", "nonlin_ignored"),
    ("sum((wi * xi for wi, xi in zip(self.w, x)), self.b)", "sum(wi * xi for wi, xi in zip(self.w, x))",
     "bias_ignored"),
], ids=["no_relu", "always_relu", "no_bias"])
def test_forward_mistakes_are_named_and_cost_only_the_neuron_cells(old, new, tag):
    wrong = mutate("Neuron", old, new)
    assert_fails(run("test_Neuron_forward", Neuron=wrong), tag)
    for grade_id in ("test_Layer", "test_MLP", "test_MLP_gradients"):
        outcome = run(grade_id, Neuron=wrong)
        assert outcome, f"{grade_id}: {outcome.message}"


def test_layer_dropping_its_keyword_arguments_is_named():
    wrong = mutate("Layer", "Neuron(nin, **kwargs)", "Neuron(nin)")
    outcome = run("test_Layer", Layer=wrong)
    assert_fails(outcome, "nonlin_ignored")
    assert "keyword arguments" in outcome.message


def test_a_broken_value_costs_no_nn_cell_and_the_check_says_why():
    broken = mutate("Value", "            self.grad += other.data * out.grad\n            other.grad += self.data * out.grad",
                    "            self.grad = other.data * out.grad\n            other.grad = self.data * out.grad")
    for grade_id in NN_CELLS:
        assert run(grade_id, Value=broken), grade_id
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()):
        setup, solutions, grades = lab_cells(AID)
        ns: dict = {"__name__": "__main__"}
        exec(compile(setup, "<setup>", "exec"), ns)
        for sid, src in solutions.items():
            exec(compile(broken if sid == "Value" else src, sid, "exec"), ns)
    with contextlib.redirect_stdout(printed):
        exec(compile(grades["test_Neuron_forward"], "<cell>", "exec"), ns)
    assert "your Value is not right yet" in printed.getvalue()


CUTS_THE_GRAPH = mutate("Neuron", "act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)",
                        "act = Value(sum(wi.data * getattr(xi, 'data', xi) for wi, xi in zip(self.w, x)) + self.b.data)")


def test_a_neuron_that_cuts_the_graph_is_named_with_a_right_or_a_broken_value():
    assert_fails(run("test_Neuron_forward", Neuron=CUTS_THE_GRAPH), "graph_broken")
    broken = mutate("Value", "            self.grad += out.grad\n            other.grad += out.grad",
                    "            self.grad = out.grad\n            other.grad = out.grad")
    assert_fails(run("test_Neuron_forward", Neuron=CUTS_THE_GRAPH, Value=broken), "graph_broken")
    assert run("test_Neuron_structure", Neuron=CUTS_THE_GRAPH)


def test_the_checks_leave_the_notebooks_random_state_alone():
    import random

    from backproplab import nn_checks

    random.seed(5)
    expected = random.random()
    random.seed(5)
    nn_checks.check_random_module(lambda: [random.uniform(-1, 1) for _ in range(4)], "draws")
    assert random.random() == expected


def test_layout_counts_and_bias_positions():
    from backproplab.nn_checks import Layout

    lay = Layout(2, (3, 1))
    assert lay.count == 3 * 3 + 4
    assert lay.bias_positions() == [2, 5, 8, 12]
    assert [lay.layer_of(k) for k in (0, 8, 9, 12)] == [0, 0, 1, 1]


# --------------------------------------------------------------------------------------------
# Predict, then check
# --------------------------------------------------------------------------------------------


def test_prediction_reference_passes_and_a_wrong_number_is_named():
    assert run("test_predicted_adjoint")
    assert run("test_predicted_adjoint", predicted_adjoint="predicted_adjoint = 6")
    for wrong in ("12.0", "-6.0"):  # only one of the two paths
        outcome = run("test_predicted_adjoint", predicted_adjoint=f"predicted_adjoint = {wrong}")
        assert_fails(outcome, "prediction")
        assert "6" in outcome.message and wrong.rstrip("0").rstrip(".") in outcome.message


def test_prediction_stub_and_non_numbers_are_named():
    release_cell = re.sub(r"### BEGIN SOLUTION\n.*?### END SOLUTION", "# YOUR CODE HERE\n    raise NotImplementedError()",
                          solution("predicted_adjoint"), flags=re.S)
    assert_fails(run("test_predicted_adjoint", predicted_adjoint=release_cell), "not_implemented")
    assert_fails(run("test_predicted_adjoint", predicted_adjoint="predicted_adjoint = 'six'"), "wrong_return")


# --------------------------------------------------------------------------------------------
# Bug hunt: check_topological_order, scored like nbgrader does (the cell's last expression)
# --------------------------------------------------------------------------------------------

HUNT = "test_check_topological_order"
HUNT_POINTS = 4.0


def kernel_score(replace: dict[str, str] | None = None) -> tuple[float, str]:
    """Score the bug-hunt grade cell as nbgrader 0.9.6 does: 0 if it raises, the value of its last
    expression if that is a number, else full points. Returns (score, message or printed text)."""
    import ast
    import contextlib
    import io
    import textwrap

    setup, solutions, grades = lab_cells(AID)
    replace = {k: textwrap.dedent(v) for k, v in (replace or {}).items()}
    ns: dict = {"__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(setup, "<setup>", "exec"), ns)
        for sid, src in solutions.items():
            exec(compile(replace.get(sid, src), f"<{sid}>", "exec"), ns)
        tree = ast.parse(grades[HUNT])
        last = tree.body[-1]
        assert isinstance(last, ast.Expr), "the bug-hunt cell must end with the score expression"
        try:
            exec(compile(ast.Module(tree.body[:-1], []), "<hunt>", "exec"), ns)
            value = eval(compile(ast.Expression(last.value), "<hunt:last>", "eval"), ns)
        except Exception as exc:  # noqa: BLE001 - a failing cell scores 0
            return 0.0, f"{type(exc).__name__}: {exc}"
    return float(value), out.getvalue()


ALWAYS_TRUE = "def check_topological_order(candidate):\n    return True\n"
ALWAYS_FALSE = "def check_topological_order(candidate):\n    return False\n"

# Compares with one particular right order, node for node: rejects right orders written otherwise.
ONE_ORDER_ONLY = '''
def check_topological_order(candidate):
    class N:
        def __init__(self, *p):
            self._prev = p
    x = N()
    b, c = N(x), N(x)
    d = N(b, c)
    try:
        got = candidate(d)
    except Exception:
        return False
    return [id(n) for n in got] == [id(x), id(b), id(c), id(d)]
'''

# A check that tests small graphs only: it cannot see the recursion.
NO_DEEP_CHAIN = mutate("check_topological_order", "    deep = Node()\n    for _ in range(100_000):\n        deep = Node(deep)\n"
                       "    return is_right_on(deep)", "    return True")

# Lets the candidates' exceptions escape: they count as "wrong", as the contract says.
NO_TRY = mutate("check_topological_order", '''        try:
            order = list(candidate(root))
        except Exception:  # a crash (RecursionError included) means the candidate is wrong
            return False''', "        order = list(candidate(root))")

# Using the notebook's Value as nodes, a loop over graphs, a 100,000-deep chain, ints instead of bools nowhere.
WITH_VALUES = '''
def check_topological_order(candidate):
    def good(root, expected):
        try:
            order = candidate(root)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) or type(exc).__name__ == "CheckTimeout":
                raise
            return False
        if not isinstance(order, (list, tuple)) or len(order) != len(expected):
            return False
        if {id(v) for v in order} != {id(v) for v in expected} or order[-1] is not root:
            return False
        pos = {id(v): k for k, v in enumerate(order)}
        return all(pos[id(p)] < pos[id(v)] for v in order for p in v._prev)

    a, b = Value(1.0), Value(2.0)
    graphs_to_try = [(a, [a])]
    s = a + a
    graphs_to_try.append((s, [a, s]))
    m = a * b
    top = (m + a) * (m + b)
    left, right = m + a, m + b
    top = left * right
    graphs_to_try.append((top, [a, b, m, left, right, top]))
    c = Value(3.0)
    u = c.exp()
    v = u.log()
    w = v * c
    graphs_to_try.append((w, [c, u, v, w]))
    d = Value(0.5)
    e = d * d
    f = e + d
    g = f * d
    graphs_to_try.append((g, [d, e, f, g]))
    for root, expected in graphs_to_try:
        if not good(root, expected):
            return False
    chain = [Value(0.0)]
    for _ in range(100_000):
        chain.append(chain[-1] + 1.0)
    everything = []
    for node in chain:
        everything.append(node)
        everything.extend(p for p in node._prev if p._prev == ())
    unique = list({id(n): n for n in everything}.values())
    return good(chain[-1], unique)
'''


def test_bug_hunt_reference_scores_full_points():
    score, printed = kernel_score()
    assert score == HUNT_POINTS, printed


def test_bug_hunt_always_true_scores_zero_as_missed():
    score, message = kernel_score({"check_topological_order": ALWAYS_TRUE})
    assert score == 0.0
    assert "(diagnosis: missed_bug)" in message, message


def test_bug_hunt_always_false_scores_zero_as_rejecting_right():
    score, message = kernel_score({"check_topological_order": ALWAYS_FALSE})
    assert score == 0.0
    assert "(diagnosis: rejected_right)" in message, message


def test_bug_hunt_rejecting_one_right_candidate_scores_zero():
    score, message = kernel_score({"check_topological_order": ONE_ORDER_ONLY})
    assert score == 0.0
    assert "(diagnosis: rejected_right)" in message, message


def test_bug_hunt_check_without_deep_chain_gets_partial_credit():
    score, printed = kernel_score({"check_topological_order": NO_DEEP_CHAIN})
    assert score == HUNT_POINTS * 7 / 8, printed
    assert "missed: recursive depth-first search" in printed


def test_bug_hunt_candidate_exceptions_escaping_the_check_count_as_caught():
    score, printed = kernel_score({"check_topological_order": NO_TRY})
    assert score == HUNT_POINTS, printed


def test_bug_hunt_check_built_on_the_notebooks_value_scores_full_points():
    score, printed = kernel_score({"check_topological_order": WITH_VALUES})
    assert score == HUNT_POINTS, printed


def test_bug_hunt_stub_is_named():
    stub_check = re.sub(r"### BEGIN SOLUTION\n.*?### END SOLUTION", "# YOUR CODE HERE\n    raise NotImplementedError()",
                        solution("check_topological_order"), flags=re.S)
    score, message = kernel_score({"check_topological_order": stub_check})
    assert score == 0.0 and "(diagnosis: not_implemented)" in message, message
    assert_fails(run_grade_cell(AID, HUNT, {"check_topological_order": stub_check}, public_only=True),
                 "not_implemented")


def test_bug_hunt_non_bool_answers_are_not_accepted():
    ints = "def check_topological_order(candidate):\n    return 1\n"
    score, message = kernel_score({"check_topological_order": ints})
    assert score == 0.0 and "not a Python bool" in message, message
    assert_fails(run_grade_cell(AID, HUNT, {"check_topological_order": ints}, public_only=True), "not_a_bool")


def test_reference_check_rejects_every_planted_bug_and_the_table_says_so():
    from backproplab import bug_hunt_lab4

    ns: dict = {"__name__": "__main__"}
    setup, solutions, _ = lab_cells(AID)
    exec(compile(setup, "<setup>", "exec"), ns)
    exec(compile(solutions["check_topological_order"], "<check>", "exec"), ns)
    planted = [bug_hunt_lab4.Candidate(n, fn, False, tag) for n, (fn, tag) in bug_hunt_lab4.planted_bugs().items()]
    verdicts = [bug_hunt_lab4.ask(ns["check_topological_order"], c, 5.0) for c in planted]
    assert [v.answer for v in verdicts] == [False] * 4
    table = bug_hunt_lab4.verdict_table(verdicts)
    assert table.count(" ok") == 4 and "leaves dropped" in table


def test_ask_stops_a_slow_check_and_keeps_stderr_out():
    import sys
    import time

    from backproplab import bug_hunt_lab4

    def slow(candidate):
        print("noise", file=sys.stderr)
        while True:
            time.sleep(0.01)

    cand = bug_hunt_lab4.Candidate("any", lambda root: [root], True)
    start = time.perf_counter()
    verdict = bug_hunt_lab4.ask(slow, cand, 0.2)
    assert verdict.answer is None and "longer than 0.2 s" in verdict.note
    assert time.perf_counter() - start < 2


def test_planted_bugs_are_wrong_on_small_graphs_or_deep_chains():
    from backproplab import bug_hunt_lab4

    class N:
        def __init__(self, *p):
            self._prev = p

    x = N()
    a = N(x)
    top = N(x, N(a))
    bugs = bug_hunt_lab4.planted_bugs()
    assert len(bugs["no record of listed nodes"][0](N(a, a))) == 5  # 3 reachable nodes: a and x listed twice
    assert bugs["leaves dropped"][0](top)[0] is not x
    order = bugs["breadth-first, reversed"][0](N(x, N(N(x))))
    pos = {id(n): i for i, n in enumerate(order)}
    assert any(pos[id(p)] > pos[id(n)] for n in order for p in n._prev)
    deep = N()
    for _ in range(5000):
        deep = N(deep)
    with pytest.raises(RecursionError):
        bugs["recursive depth-first search"][0](deep)


def test_untouched_release_names_the_unwritten_classes_not_the_value():
    replace = {sid: stub(sid) for sid in ("Value", "Neuron", "Layer", "MLP")}
    for grade_id in NN_CELLS:
        assert_fails(run_grade_cell(AID, grade_id, replace), "not_implemented")


@pytest.mark.slow
def test_partial_credit_survives_nbgrader_autograde(tmp_path):
    """A real `nbgrader autograde`: a check that misses one wrong candidate of eight scores 3.5 of 4."""
    import shutil

    import nbformat
    from backproplab_autograder.config import render_config
    from backproplab_autograder.course import ASSIGNMENTS, SOLUTIONS, nbgrader
    from nbgrader.api import Gradebook

    nb_name = ASSIGNMENTS[AID]
    (tmp_path / "nbgrader_config.py").write_text(render_config(tmp_path, students=["partial"], timeout=300))
    shutil.copytree(SOLUTIONS / AID, tmp_path / "source" / AID, ignore=shutil.ignore_patterns(".hypothesis"))
    nbgrader("generate_assignment", AID, "--force", cwd=tmp_path)
    nb = nbformat.read(SOLUTIONS / AID / nb_name, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "check_topological_order":
            cell.source = NO_DEEP_CHAIN
    dest = tmp_path / "submitted" / "partial" / AID
    dest.mkdir(parents=True)
    nbformat.write(nb, dest / nb_name)
    (dest / "timestamp.txt").write_text("2026-11-22 10:00:00.000000 UTC")
    nbgrader("autograde", AID, "--force", cwd=tmp_path)
    with Gradebook(f"sqlite:///{tmp_path}/gradebook.db") as gb:
        grades = {g.name: (g.score, g.max_score) for g in gb.find_submission_notebook(nb_name[:-6], AID, "partial").grades}
    assert grades[HUNT] == (HUNT_POINTS * 7 / 8, HUNT_POINTS)
    assert grades["test_Neuron_forward"][0] == grades["test_Neuron_forward"][1]


def test_the_other_answers_here_are_not_flagged_as_tampering():
    """The class grader scans solution cells for tampering; the alternatives above are honest answers."""
    import ast
    import textwrap
    from pathlib import Path

    import nbformat
    from backproplab_autograder import policy
    from backproplab_autograder.course import ASSIGNMENTS, SOLUTIONS

    ref = nbformat.read(str(SOLUTIONS / AID / ASSIGNMENTS[AID]), as_version=4)
    first = next(c for c in ref.cells if c.cell_type == "code")
    protected = policy.protected_names([c.source for c in ref.cells if is_grade(c)])
    tree = ast.parse(Path(__file__).read_text())
    scanned = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "\n" in node.value:
            code = textwrap.dedent(node.value)
            try:
                ast.parse(code)
            except SyntaxError:
                continue
            cell = nbformat.v4.new_code_cell(code, metadata={"nbgrader": {"grade_id": "x", "solution": True}})
            assert policy.tampering(nbformat.v4.new_notebook(cells=[first, cell]), protected) == [], code
            scanned += 1
    assert scanned >= 8


# With a broken Neuron, Layer and MLP are graded with stand-ins: their own mistakes are still named.
BROKEN_NEURON = mutate("Neuron", "return act.relu() if self.nonlin else act", "return act")


@pytest.mark.parametrize(("sid", "old", "new", "cell", "tag"), [
    ("Layer", "return outs[0] if len(outs) == 1 else outs", "return outs", "test_Layer", "single_output"),
    ("Layer", "Neuron(nin, **kwargs)", "Neuron(nin)", "test_Layer", "nonlin_ignored"),
    ("Layer", "return [p for n in self.neurons for p in n.parameters()]",
     "return [p for n in self.neurons for p in n.parameters()[:-1]]", "test_Layer", "parameter_count"),
    ("Layer", "return [p for n in self.neurons for p in n.parameters()]",
     "return [p for n in self.neurons[::-1] for p in n.parameters()]", "test_Layer", "parameter_order"),
    ("MLP", "nonlin=i != len(nouts) - 1", "nonlin=True", "test_MLP", "relu_last_layer"),
    ("MLP", "nonlin=i != len(nouts) - 1", "nonlin=False", "test_MLP", "missing_relu"),
    ("MLP", "            x = layer(x)\n", "            layer(x)\n", "test_MLP", "forward"),
    ("MLP", "        for p in self.parameters():\n            p.grad = 0.0",
     "        for p in self.layers[0].parameters():\n            p.grad = 0.0", "test_MLP_gradients",
     "zero_grad_incomplete"),
], ids=["layer_list_of_one", "layer_drops_kwargs", "layer_drops_biases", "layer_reversed", "mlp_relu_last",
        "mlp_all_linear", "mlp_not_chained", "mlp_zero_grad_first_layer_only"])
def test_stand_ins_still_name_the_mistakes_of_the_class_under_test(sid, old, new, cell, tag):
    assert_fails(run(cell, Neuron=BROKEN_NEURON, **{sid: mutate(sid, old, new)}), tag)


def test_stand_ins_pass_the_right_classes_and_micrograd_and_restore_the_names():
    for grade_id in ("test_Layer", "test_MLP", "test_MLP_gradients"):
        assert run(grade_id, Neuron=BROKEN_NEURON), grade_id
        assert run(grade_id, Neuron=BROKEN_NEURON, Layer=LOOP_LAYER, MLP=LOOP_MLP), grade_id
    from backproplab import nn_checks

    ns = {"Layer": "mine"}
    with nn_checks._swapped(ns, "Layer", "stand-in"):
        assert ns["Layer"] == "stand-in"
    assert ns["Layer"] == "mine"


# --------------------------------------------------------------------------------------------
# The moons helpers
# --------------------------------------------------------------------------------------------


def test_moons_are_small_lists_of_floats_with_labels_plus_minus_one_and_fixed_by_the_seed():
    from backproplab import moons

    xs, ys = moons.load_moons(30, noise=0.1, seed=3)
    assert len(xs) == len(ys) == 30 and all(len(x) == 2 and all(type(v) is float for v in x) for x in xs)
    assert set(ys) == {-1.0, 1.0}
    assert moons.load_moons(30, noise=0.1, seed=3) == (xs, ys)
    assert moons.load_moons(30, noise=0.1, seed=4)[0] != xs


def test_grid_scores_agree_with_the_point_by_point_reference():
    import torch
    from backproplab import moons, nn_checks

    layout = nn_checks.Layout(2, (5, 3, 1))
    gen = torch.Generator().manual_seed(0)
    theta = torch.randn(layout.count, generator=gen, dtype=torch.float64)
    points = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    batch = moons.scores(theta.tolist(), layout, points)
    one_by_one = torch.stack([nn_checks.torch_forward(theta, p, layout, relu_last=False)[0] for p in points])
    assert torch.allclose(batch, one_by_one)


def test_plots_take_an_ax_and_return_it():
    from backproplab import moons, nn_checks
    from matplotlib.figure import Figure

    layout = nn_checks.Layout(2, (4, 1))
    xs, ys = moons.load_moons(12)
    fig = Figure()
    ax = fig.add_subplot()
    assert moons.plot_boundary(ax, [0.1] * layout.count, layout, xs, ys, steps=20, title="t") is ax
    assert ax.get_title() == "t" and len(ax.collections) >= 3  # regions, boundary, two scatters
    ax2 = fig.add_subplot(2, 1, 2)
    assert moons.plot_losses(ax2, {"a": [1.0, 0.5], "b": [1.0, 2.0]}) is ax2
    assert len(ax2.get_lines()) == 2


def test_the_total_time_budget_stops_a_slow_check():
    import time

    from backproplab import bug_hunt_lab4

    def right(root):
        return [root]

    def slow_but_sound(candidate):
        time.sleep(0.3)
        return candidate is right

    wrong = [bug_hunt_lab4.Candidate(f"wrong {k}", lambda root: [], False) for k in range(4)]
    cands = [bug_hunt_lab4.Candidate("right", right, True), *wrong]
    start = time.perf_counter()
    earned = bug_hunt_lab4.score(slow_but_sound, cands, 4, seconds=5.0, total=0.8)
    assert time.perf_counter() - start < 2.0
    assert earned == 1.0  # the right one and one wrong one fit in 0.8 s; the others get no answer
    with pytest.raises(AssertionError, match="diagnosis: timeout"):
        bug_hunt_lab4.score(slow_but_sound, [cands[0], cands[0]], 4, seconds=5.0, total=0.4)
