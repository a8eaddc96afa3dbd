"""Pages of the projects app, one module per concept; projects/urls.py names each view by its module."""
