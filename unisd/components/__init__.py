"""Component protocols: the shapes every extension point takes."""
