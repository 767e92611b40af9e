"""The grader decides what nbgrader may score in a grade cell's outputs (scoring.fix_outputs)."""

from __future__ import annotations

from backproplab_autograder.scoring import fix_outputs, scores_itself
from nbformat.v4 import new_code_cell, new_output
from nbgrader.utils import determine_grade


def _grade_cell(source, outputs, points=2):
    cell = new_code_cell(source, metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": "t",
                                                        "points": points, "locked": True, "schema_version": 3}})
    cell.outputs = outputs
    return cell


def _result(value):
    return new_output("execute_result", data={"text/plain": repr(value)}, execution_count=1)


def _error():
    return new_output("error", ename="AssertionError", evalue="wrong (diagnosis: values)", traceback=[])


def test_stderr_is_shown_as_text_and_not_scored():
    cell = fix_outputs(_grade_cell("check(f)", [new_output("stream", name="stderr", text="UserWarning: x\n")]))
    assert determine_grade(cell) == (2.0, 2.0)
    assert cell.outputs[0]["name"] == "stdout" and cell.outputs[0]["text"] == "[stderr] UserWarning: x\n"


def test_a_result_published_before_the_error_does_not_score():
    cell = fix_outputs(_grade_cell("assert f(1) == 2", [_result(2.0), _error()]))
    assert determine_grade(cell) == (0.0, 2.0)
    assert cell.outputs[0]["output_type"] == "error"


def test_a_number_scores_only_in_a_cell_written_to_score_itself():
    plain = fix_outputs(_grade_cell("assert f(1) == 2\nx = 1", [_result(0.5)]))
    assert determine_grade(plain) == (2.0, 2.0) and plain.outputs[0]["output_type"] == "display_data"
    hunt = fix_outputs(_grade_cell("score = hunt()\nscore", [_result(0.1), _result(1.5)]))
    assert determine_grade(hunt) == (1.5, 2.0)                 # the cell's own (last) result
    assert [o["output_type"] for o in hunt.outputs] == ["display_data", "execute_result"]


def test_scores_itself_reads_the_trusted_source():
    assert scores_itself("h = hunt()\nh.score()")
    assert not scores_itself("h = hunt()\nprint(h.score())")
    assert not scores_itself("x = 1")
    assert not scores_itself("def f(:\n")


def test_feedback_summary_names_each_check_and_wraps_long_lines():
    from backproplab_autograder.feedback_page import polish_text

    page = ('<html><head><title>x</title></head><body><ol>'
            '<li><a href="#test_backward_bias">Test cell</a> (Score: 0.0 / 2.0)</li>'
            '<li><a href="#answer_cost">Written response</a> (Score: 0.0 / 2.0)</li></ol></body></html>')
    out = polish_text(page)
    assert '<code>test_backward_bias</code></a> (Score: 0.0 / 2.0)' in out and "Test cell" not in out
    assert "<code>answer_cost</code></a> (written answer)" in out
    assert "white-space: pre-wrap" in out.split("</head>")[0]
    assert polish_text(out) == out  # idempotent


def test_the_feedback_exporter_makes_the_same_page_as_nbconvert():
    """FeedbackHTMLExporter skips nbconvert's BeautifulSoup pass only where it would change nothing: a
    page without images or JupyterLab cell wrappers is the same document; a page with them gets the same
    alt text and tabindex; templates are compiled once per process, with the same result."""
    from backproplab_autograder.feedback_page import FeedbackHTMLExporter
    from bs4 import BeautifulSoup
    from nbconvert.exporters import HTMLExporter
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    plain = new_notebook(cells=[new_markdown_cell("# Lab\nsome *text* & <b>more</b>"),
                                new_code_cell("print(1 < 2)", outputs=[new_output("stream", name="stdout",
                                                                                  text="True\n")])])
    with_image = new_notebook(cells=[*plain.cells, new_code_cell("plot()", outputs=[
        new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})])])
    for template in ("classic", "lab"):
        for nb in (plain, with_image):
            expected, _ = HTMLExporter(template_name=template).from_notebook_node(nb)
            for _ in range(2):  # the second exporter uses the compiled templates of the first
                page, _ = FeedbackHTMLExporter(template_name=template).from_notebook_node(nb)
                assert str(BeautifulSoup(page, features="html.parser")) == expected, (template, len(nb.cells))
    image_page, _ = FeedbackHTMLExporter(template_name="classic").from_notebook_node(with_image)
    assert 'alt="No description has been provided for this image"' in image_page
