"""Agora: a production social backend (auth, posts and realtime services)."""

__version__ = "0.1.0"
