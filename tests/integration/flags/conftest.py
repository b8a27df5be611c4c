from tests.log_capture import json_logs, restore_logging

__all__ = ["json_logs", "restore_logging"]
