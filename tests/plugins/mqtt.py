"""Shared pytest fixtures: mqtt."""
