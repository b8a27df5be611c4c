"""Feature flags (OpenFeature, in-process file provider) and the fault switch built on them.

See docs/flags.md: the file format, the flags Agora reads, percentage rollouts and the
fault switch's interface.
"""

from agora.flags.catalog import CATALOG, FlagSpec
from agora.flags.client import FeatureFlags
from agora.flags.faults import FaultPlan, FaultSwitch
from agora.flags.provider import FileProvider, FlagFileError, bucket

__all__ = [
    "CATALOG",
    "FaultPlan",
    "FaultSwitch",
    "FeatureFlags",
    "FileProvider",
    "FlagFileError",
    "FlagSpec",
    "bucket",
]
