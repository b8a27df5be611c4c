"""``agora gameday``: run the game day's scenarios against a live stack (docs/gameday.md)."""

from __future__ import annotations

import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from agora.gameday import SCENARIO_NAMES

gameday_app = typer.Typer(
    help="Game day: faults injected into `agora up --replicas 3 --monitoring` under load, "
    "MTTD and MTTR measured at the alert webhook.",
    invoke_without_command=True,
)


def _prerequisites() -> list[str]:
    from agora.devstack.monitoring import REQUIRED_TOOLS, missing
    from agora.gameday.infra import missing_redis_tools

    problems = []
    absent = missing(REQUIRED_TOOLS)
    if absent:
        problems.append(f"{', '.join(absent)} missing: run `make monitoring-tools`")
    redis_tools = missing_redis_tools()
    if redis_tools:
        problems.append(
            f"{', '.join(redis_tools)} missing: apt-get install redis-server redis-sentinel"
        )
    return problems


@gameday_app.callback()
def gameday(
    ctx: typer.Context,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            "-s",
            help=f"Repeatable; default every one: {', '.join(SCENARIO_NAMES)}",
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast/--production",
            help="Fast test config (1 s scrape and evaluation, every `for:`, window and group "
            "interval on 1/15) or production's (15 s, the rules as deployed)",
        ),
    ] = False,
    replicas: Annotated[int, typer.Option(min=2, max=5, help="Instances of each service")] = 3,
    report_dir: Annotated[Path, typer.Option(help="Where the Markdown and JSON reports go")] = Path(
        "gameday-reports"
    ),
    workdir: Annotated[
        Path | None,
        typer.Option(help="The stack's own PostgreSQL, Redis and state (default: a temp dir)"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Closed-loop readers of the load")] = 8,
) -> None:
    """Start a stack of its own (own ports, PostgreSQL, Redis master + replica + 3 Sentinels,
    Prometheus, Alertmanager, the webhook), run a steady load through its gateway, and per
    scenario: inject the fault, wait for the expected alert at the webhook (MTTD), let the
    system heal or apply the runbook's step, wait for the SLIs and the alert's resolution
    (MTTR). Prints the table and writes it as Markdown and JSON. Exit status 1 when an
    expected alert never fired, fired for the wrong service, MTTD >= 5 min or MTTR >= 30 min,
    or the load lost >= 0.1% of requests while an instance survived; 2 on bad usage."""
    if ctx.invoked_subcommand is not None:
        return
    chosen = scenario or list(SCENARIO_NAMES)
    unknown = [s for s in chosen if s not in SCENARIO_NAMES]
    if unknown:
        typer.secho(
            f"agora: unknown scenario {', '.join(unknown)}; "
            f"choose from {', '.join(SCENARIO_NAMES)}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    problems = _prerequisites()
    if problems:
        for problem in problems:
            typer.secho(f"agora: {problem}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    raise typer.Exit(_run(chosen, fast, replicas, report_dir, workdir, workers))


def _run(
    chosen: list[str],
    fast: bool,
    replicas: int,
    report_dir: Path,
    workdir: Path | None,
    workers: int,
) -> int:
    from agora.config import ConfigError
    from agora.gameday import report, runner
    from agora.gameday.load import Load
    from agora.gameday.scenarios import SCENARIOS, Context
    from agora.gameday.stack import FAST, PRODUCTION, Stack
    from agora.gateway.chaos import Chaos

    console = Console(stderr=True, width=200)

    def log(message: str) -> None:
        console.print(f"{time.strftime('%H:%M:%S')} {message}", highlight=False)

    timing = FAST if fast else PRODUCTION
    base = workdir or Path(tempfile.mkdtemp(prefix="agora-gameday-"))
    stack = Stack(base.resolve(), timing, replicas)
    results: list[runner.Result] = []
    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": "agora gameday " + shlex.join(sys.argv[2:]),
        "timing": timing.name,
        "workers": workers,
        "websockets": 24,
        "replicas": replicas,
    }
    load: Load | None = None

    def interrupted(signum: int, _: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # A SIGTERM (a test's timeout, a CI job cancelled) still stops the whole stack below.
    signal.signal(signal.SIGTERM, interrupted)
    try:
        log(f"starting the stack in {base} ({timing.name} monitoring config)…")
        stack.start()
        log(f"stack up: gateway {stack.gateway}, Prometheus {stack.prometheus}")
        load = Load(stack.gateway, workers=workers)
        load.start()
        with Chaos(stack.admin) as chaos:
            context = Context(stack, load, chaos)
            results.extend(runner.run(context, SCENARIOS[name], timing, log) for name in chosen)
    except (RuntimeError, TimeoutError, OSError, ConfigError) as exc:
        console.print(f"[red]agora: game day aborted: {exc}[/]")
        return 1
    finally:
        if load is not None:
            load.stop()
        stack.stop()
        if results:
            report.print_table(console, results)
            md, js = report.write(report_dir, results, meta)
            console.print(f"report: {md} · {js}")
    return 0 if results and all(r.passed for r in results) else 1
