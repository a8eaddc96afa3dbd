"""Celery tasks that grade submissions, and the sandboxes the grader runs in."""
