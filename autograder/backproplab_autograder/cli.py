"""``backproplab-grade``: grade a whole class with nbgrader (being built, see issue 7)."""

import sys


def main(argv=None) -> int:
    sys.stderr.write("backproplab-grade: not available yet\n")
    return 2
