"""linewatch collect commands."""
