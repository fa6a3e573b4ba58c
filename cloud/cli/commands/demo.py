"""linewatch demo commands."""
