"""The posts service."""
