"""Backups and restores: pgBackRest (physical + WAL), encrypted logical dumps, the restore drill."""
