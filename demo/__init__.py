"""The demo course at the edge of the app graph: it may import every app, and no app imports it."""
