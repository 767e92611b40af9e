"""Instructor tools for Backprop Lab: release, grade a class, report."""
