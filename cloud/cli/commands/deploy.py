"""linewatch deploy commands."""
