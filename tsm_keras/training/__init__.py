"""Training and evaluation: recipe, run directory, callbacks, distribution."""
