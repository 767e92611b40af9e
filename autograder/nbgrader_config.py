"""nbgrader configuration for Backprop Lab.

Run nbgrader from this folder (``cd autograder && nbgrader ...``) or through the Makefile targets.
The course root is the repository: answers are written only in ``solutions/`` (nbgrader's source
directory) and ``notebooks/`` is the student release it generates. Everything nbgrader creates at
run time (submissions, autograded copies, feedback, the gradebook) lives under
``autograder/runtime/``, which git ignores.
"""

import os

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

_here = os.path.dirname(os.path.abspath(__file__))
_root = os.path.dirname(_here)
os.makedirs(os.path.join(_here, "runtime"), exist_ok=True)

c.CourseDirectory.course_id = "backprop-lab"
c.CourseDirectory.root = _root
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.submitted_directory = "autograder/runtime/submitted"
c.CourseDirectory.autograded_directory = "autograder/runtime/autograded"
c.CourseDirectory.feedback_directory = "autograder/runtime/feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(_here, "runtime", "gradebook.db")
# "*.py": the text source beside each notebook holds the answers; it is never released.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".DS_Store", "*.py"]

# Student releases carry no outputs; cells keep the nbgrader metadata that protects grade cells.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Per-cell and per-notebook limits when grading (the class grader sets its own, stricter ones).
c.ExecutePreprocessor.timeout = 120
c.Execute.timeout = 120
c.Execute.allow_errors = True
c.Execute.interrupt_on_timeout = True
