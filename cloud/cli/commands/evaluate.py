"""linewatch evaluate commands."""
