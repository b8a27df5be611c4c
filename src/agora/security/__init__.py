"""Tokens and keys, passwords, sanitising: the security primitives every service shares."""
