"""`memeflow eval`: how well and how fast a model finds things on this machine.

`metrics` holds the formulas (pure functions), `datasets` reads the three layouts,
`models` builds the model under test, `tasks` runs the measurements and `report` prints
them.
"""
