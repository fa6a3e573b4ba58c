"""linewatch train commands."""
