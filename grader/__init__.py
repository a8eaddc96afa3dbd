"""Evaluation library of the course: artifact checks, lab evaluators, datasets and the result schema.

It imports nothing from Django or the web apps so that it runs alone inside the grading sandbox.
"""

GRADER_VERSION = "1.0.0"
