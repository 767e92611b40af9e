"""course_grades.csv puts labs of different point totals on one scale, leaves a lab not handed in empty
(never 0), and weighs labs as the manifest says; the class files cover every result on disk."""

from __future__ import annotations

import csv

from backproplab_autograder import results


def _res(student, aid, score, max_score):
    return {"student_id": student, "assignment": aid, "score": score, "max_score": max_score, "cells": [],
            "course_token": "t"}


def _rows(path):
    with open(path) as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


def test_labs_are_percentages_of_their_own_points_and_missing_labs_are_empty(tmp_path):
    done = [_res("ana", "lab1_perceptron", 15, 15), _res("ana", "lab4_dag_autograd", 9, 45),
            _res("ben", "lab1_perceptron", 3, 15)]
    results.write_course_grades(tmp_path, done, weights={})
    rows = _rows(tmp_path / "course_grades.csv")
    assert rows["ana"]["lab1_perceptron"] == "100.00" and rows["ana"]["lab4_dag_autograd"] == "20.00"
    assert rows["ben"]["lab4_dag_autograd"] == ""          # not handed in: empty, not 0
    assert rows["ana"]["course_percent"] == "60.00"         # equal weights: (100 + 20) / 2, not 24 / 60
    assert rows["ben"]["course_percent"] == "20.00" and rows["ben"]["labs_handed_in"] == "1"
    header = (tmp_path / "course_grades.csv").read_text().splitlines()[0].split(",")
    assert header.index("lab1_perceptron") < header.index("lab4_dag_autograd")  # manifest order


def test_weights_change_the_course_percent(tmp_path):
    done = [_res("ana", "lab1_perceptron", 15, 15), _res("ana", "lab4_dag_autograd", 0, 45)]
    results.write_course_grades(tmp_path, done, weights={"lab1_perceptron": 1.0, "lab4_dag_autograd": 3.0})
    assert _rows(tmp_path / "course_grades.csv")["ana"]["course_percent"] == "25.00"


def test_class_files_are_built_from_every_result_on_disk(tmp_path):
    for student in ("ana", "ben"):
        results.write_json_atomic(tmp_path / "results" / student / "lab1_perceptron.json",
                                  _res(student, "lab1_perceptron", 5, 15))
    results.write_json_atomic(tmp_path / "results" / "old" / "lab1_perceptron.json",
                              dict(_res("old", "lab1_perceptron", 1, 15), course_token="another course"))
    fresh = [_res("ben", "lab1_perceptron", 15, 15)]  # a one-student regrade
    everything = results.load_all(tmp_path, "t", fresh)
    got = {(r["student_id"], r["score"]) for r in everything}
    assert got == {("ana", 5), ("ben", 15)}
