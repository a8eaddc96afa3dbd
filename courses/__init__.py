"""Courses, their members and roles, roster import, deadlines and extensions, sign-in, the audit log."""
