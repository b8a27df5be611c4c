"""Every flag Agora reads: its key, what it does, and the variant names its metric series are
created with at start (``agora_feature_flag_evaluations_total{flag,variant}``).

A flag missing from the flags file evaluates to the default the code passes, counted under
the variant ``default``; the file names the other variants (docs/flags.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlagSpec:
    key: str
    description: str
    variants: tuple[str, ...] = ("default", "on", "off")


# Product behaviour rolled out gradually, sticky per user (the recipient of the notification).
NOTIFICATION_LIKE_COUNT = FlagSpec(
    "notification-like-count",
    "a like's notification event carries the post's like count, so the author's client "
    "updates the counter without fetching the post",
)
# The application-level fault switch (agora.flags.faults), one object flag per dependency,
# evaluated per instance (targeting key: the instance id).
FAULT_POSTGRES = FlagSpec(
    "fault-postgres",
    "inject latency or errors into PostgreSQL calls (a share of the calls of this instance)",
    ("default", "off", "latency", "errors"),
)
FAULT_REDIS = FlagSpec(
    "fault-redis",
    "inject latency or errors into Redis calls (a share of the calls of this instance)",
    ("default", "off", "latency", "errors"),
)

CATALOG: tuple[FlagSpec, ...] = (NOTIFICATION_LIKE_COUNT, FAULT_POSTGRES, FAULT_REDIS)
