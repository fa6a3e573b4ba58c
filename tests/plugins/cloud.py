"""Shared pytest fixtures: cloud."""
