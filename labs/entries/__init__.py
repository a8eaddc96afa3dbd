"""Lab competition entries: one per student per lab, a succeeded submission plus the write-up the lab asks for."""
