"""Shared pytest fixtures: edge."""
