"""Final projects: groups, proposals and slides, paper reviews and their grading, completion."""
