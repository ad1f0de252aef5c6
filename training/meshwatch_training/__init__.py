"""Meshwatch training: dataset reader, detector and forecaster models (ARCHITECTURE.md §4-§5)."""

__version__ = "0.1.0"
