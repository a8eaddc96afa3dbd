"""Pages of judging and prizes, one module per concept; the URL modules name each view by its module."""
