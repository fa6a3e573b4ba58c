"""Shared pytest fixtures: deploy."""
