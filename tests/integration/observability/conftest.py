"""Log capture for these tests."""

from tests.log_capture import json_logs, log_file, restore_logging

__all__ = ["json_logs", "log_file", "restore_logging"]
