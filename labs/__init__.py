"""Labs, submissions, evaluations, leaderboards, the student-facing lab pages and the submission API."""
