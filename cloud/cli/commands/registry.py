"""linewatch registry commands."""
