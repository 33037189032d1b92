"""A search as one pass of stages, each a function in its own module (`pipeline.py` runs
them in order; ARCHITECTURE.md, "How a search runs")."""
