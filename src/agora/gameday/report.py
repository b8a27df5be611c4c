"""The game day's table: printed, and written as Markdown and JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agora.gameday.runner import MTTD_BOUND_S, MTTR_BOUND_S, Result

COLUMNS = ("scenario", "timing", "alert", "MTTD s", "MTTR s", "SLIs back s", "errors", "result")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _row(result: Result) -> list[str]:
    share = f" ({result.errors / result.requests:.2%})" if result.requests else ""
    return [
        result.scenario,
        result.timing,
        result.alert or ("none expected" if not result.expected else "MISSING"),
        _seconds(result.mttd_s),
        _seconds(result.mttr_s),
        _seconds(result.sli_back_s),
        f"{result.errors}/{result.requests}{share}",
        "pass" if result.passed else "FAIL: " + "; ".join(result.problems),
    ]


def _by_route(result: Result) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(result.errors_by_route.items()))


def print_table(console: Console, results: list[Result]) -> None:
    table = Table(title="Game day", title_justify="left")
    for column in COLUMNS:
        table.add_column(column)
    for result in results:
        table.add_row(*_row(result))
    console.print(table)


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [
        f"# Game day {meta['started']}",
        "",
        f"Command: `{meta['command']}` · timing: {meta['timing']} · bounds: MTTD < "
        f"{MTTD_BOUND_S / 60:.0f} min, MTTR < {MTTR_BOUND_S / 60:.0f} min · load: "
        f"{meta['workers']} closed-loop readers + {meta['websockets']} WebSockets through the "
        "gateway",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_row(r)).replace("\n", " ") + " |" for r in results]
    lines += ["", "Expected alerts:", ""]
    lines += [
        f"- {r.scenario} ({r.what}): {', '.join(r.expected) or 'no page (heals itself)'}"
        + (
            f"; also fired for another service: {', '.join(r.wrong_service)}"
            if r.wrong_service
            else ""
        )
        for r in results
    ]
    return "\n".join(lines) + "\n"


def write(directory: Path, results: list[Result], meta: dict[str, Any]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    md = directory / f"gameday-{meta['timing']}-{stamp}.md"
    js = directory / f"gameday-{meta['timing']}-{stamp}.json"
    md.write_text(markdown(results, meta))
    js.write_text(json.dumps({**meta, "results": [r.to_json() for r in results]}, indent=2) + "\n")
    return md, js
