"""agora_backup_* metrics for node_exporter's textfile collector, written atomically.

Each run updates its own kind in a small JSON state next to the .prom file, then rewrites the
whole .prom file (temp file + rename, which prometheus_client's write_to_textfile does), so
every series exists with every known kind from the first run on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

KINDS = ("full", "diff", "incr", "logical", "drill")
FIELDS = {
    "last_success_timestamp_seconds": "Unix time of the last successful run",
    "last_run_timestamp_seconds": "Unix time of the last run, successful or not",
    "duration_seconds": "How long the last successful run took",
    "size_bytes": "Size of the last successful backup (repository bytes)",
    "rpo_seconds": "Writes at risk at the last run: age of the newest archived WAL",
    "restore_drill_success": "1 when the last run succeeded (drill: restored and verified)",
}


def record(
    directory: Path,
    kind: str,
    *,
    success: bool,
    duration_s: float = 0.0,
    size_bytes: float = 0.0,
    rpo_s: float = 0.0,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state_file = directory / "agora_backup.json"
    try:
        state: dict[str, dict[str, float]] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    entry = state.setdefault(kind, {})
    now = time.time()
    entry["last_run_timestamp_seconds"] = now
    entry["restore_drill_success"] = 1.0 if success else 0.0
    if success:
        entry["last_success_timestamp_seconds"] = now
        entry["duration_seconds"] = duration_s
        entry["size_bytes"] = size_bytes
        entry["rpo_seconds"] = rpo_s
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(state_file)

    registry = CollectorRegistry()
    for field, help_text in FIELDS.items():
        gauge = Gauge(f"agora_backup_{field}", help_text, ["kind"], registry=registry)
        for known in KINDS:
            gauge.labels(kind=known).set(state.get(known, {}).get(field, 0.0))
    write_to_textfile(str(directory / "agora_backup.prom"), registry)
