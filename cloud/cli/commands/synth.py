"""linewatch synth commands."""
