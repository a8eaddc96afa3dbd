"""Judging rounds (panels, rubrics, scores, normalisation) and prizes with their eligibility."""
