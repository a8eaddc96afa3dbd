"""One module per lab; each defines ``Lab``, a ``grader.registry.LabEvaluator``."""
