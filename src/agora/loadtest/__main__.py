"""``python -m agora.loadtest SCENARIO`` (what ``make loadtest SCENARIO=...`` runs)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from agora.config import ConfigError, load_settings
from agora.loadtest.caches import hit_ratios, read_counters
from agora.loadtest.cpu import children_seconds, cpu_seconds, snapshot
from agora.loadtest.integrity import Integrity, check_sync
from agora.loadtest.live import summary_from_live
from agora.loadtest.memory import MemorySampler
from agora.loadtest.profiling import FlameGraphs
from agora.loadtest.report import (
    merge,
    print_memory,
    print_summary,
    print_timeline,
    write_summary,
)
from agora.loadtest.runner import (
    END_GRACE_S,
    K6_INTERRUPTED,
    THRESHOLDS_FAILED,
    Shard,
    k6_binary,
    plan_shards,
    run_shards,
    seconds,
)
from agora.loadtest.scenarios import SCENARIOS
from agora.loadtest.seeding import ensure_seed
from agora.loadtest.stack import (
    EXTRA_GATEWAY_FIRST_PORT,
    Ports,
    Stack,
    StackError,
    metrics_urls,
    running_stack,
)
from agora.loadtest.timeline import GatewayTimeline

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def main(  # noqa: PLR0913, PLR0917  # typer: each parameter is one command-line option
    scenario: Annotated[str, typer.Argument(help="smoke, load, stress or soak")],
    duration: Annotated[str, typer.Option(help="Override the run's length, e.g. 3m")] = "",
    ramp: Annotated[str, typer.Option(help="Override the users' arrival ramp, e.g. 60s")] = "",
    users: Annotated[int, typer.Option(help="Override the number of users")] = 0,
    rate_per_user: Annotated[float, typer.Option(help="Override each user's req/s")] = 0.0,
    refresh_after: Annotated[float, typer.Option(help="Refresh tokens every N s")] = 0.0,
    min_rps: Annotated[float, typer.Option(help="Override the req/s threshold")] = -1.0,
    replicas: Annotated[int, typer.Option(help="Instances of each service")] = 3,
    gateways: Annotated[int, typer.Option(help="Gateway processes (0: one per k6)")] = 0,
    k6_processes: Annotated[int, typer.Option(help="k6 processes (0: one per 2,500 users)")] = 0,
    seed_users: Annotated[int, typer.Option(help="Seeded users (0: the scenario's)")] = 0,
    seed_posts: Annotated[int, typer.Option(help="Seeded posts (-1: the scenario's)")] = -1,
    returning: Annotated[
        float,
        typer.Option(
            min=-1.0, max=1.0, help="Share of users back on a remembered session (-1: scenario's)"
        ),
    ] = -1.0,
    workdir: Annotated[Path, typer.Option(help="`agora up`'s workdir")] = Path(".agora"),
    port_base: Annotated[
        int, typer.Option(help="First instances' ports (`agora up --port-base`; 0: contract)")
    ] = 0,
    extra_gateway_port: Annotated[
        int, typer.Option(help="HTTPS port of gateway 2 (3, ... follow, 3 ports apart)")
    ] = EXTRA_GATEWAY_FIRST_PORT,
    memory_interval: Annotated[
        float, typer.Option(help="Seconds between memory samples of every process")
    ] = 60.0,
    flame_seconds: Annotated[
        int, typer.Option(help="py-spy flame graph of each service for N s (0: none)")
    ] = 0,
    flame_after: Annotated[
        float, typer.Option(help="Start the flame graphs N s into the k6 run")
    ] = 60.0,
    results: Annotated[Path, typer.Option(help="Where runs are written")] = Path(
        "loadtest-results"
    ),
) -> None:
    """Seed, start the system unless it runs, run k6, report and check for lost writes."""
    console = Console()
    known = SCENARIOS.get(scenario)
    if known is None:
        choices = ", ".join(SCENARIOS)
        console.print(f"[red]unknown scenario {scenario!r}: choose one of {choices}[/]")
        raise typer.Exit(2)
    plan = known
    if users or seed_users or seed_posts >= 0 or returning >= 0:
        plan = replace(
            known,
            users=users or known.users,
            seed_users=seed_users or known.seed_users,
            seed_posts=known.seed_posts if seed_posts < 0 else seed_posts,
            returning=known.returning if returning < 0 else returning,
        )
    overrides = _k6_overrides(duration, ramp, rate_per_user, refresh_after, min_rps)
    try:
        k6_binary()
        settings = load_settings()
        deadline = seconds(overrides.get("DURATION", plan.duration)) + END_GRACE_S
    except (FileNotFoundError, ConfigError, ValueError) as exc:
        console.print(f"[red]loadtest: {exc}[/]")
        raise typer.Exit(2) from None
    out = results.resolve() / f"{scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    workdir = workdir.resolve()
    try:
        with running_stack(
            settings,
            workdir=workdir,
            replicas=replicas,
            gateways=gateways or k6_processes or plan.processes,
            log_dir=out,
            ports=Ports(port_base or None, extra_gateway_port),
        ) as stack:
            console.print(f"seeding (or reusing) {plan.seed_users:,} users…")
            users_file = ensure_seed(stack.settings, plan, workdir)
            processes = k6_processes or plan.processes
            shards = plan_shards(plan.users, processes, stack.gateways, out)
            console.print(
                f"running k6 {scenario}: {plan.users:,} users in {len(shards)} k6 process(es) "
                f"through {len(stack.gateways)} gateway(s); results in {out}"
            )
            cpu_before = snapshot(stack.pids, stack.markers)
            caches_before = read_counters(metrics_urls(workdir))
            k6_before = children_seconds()
            sampler = MemorySampler(lambda: stack.pids, stack.markers, memory_interval)
            flames = FlameGraphs(lambda: stack.pids, stack.markers, out, flame_after, flame_seconds)
            timeline = GatewayTimeline(stack.admins)
            sampler.start()
            flames.start()
            timeline.start()
            codes = run_shards(scenario, shards, users_file, overrides, deadline)
            over_time = timeline.stop()
            memory = sampler.stop()
            flame_graphs = flames.stop()
            cpu = cpu_seconds(cpu_before, snapshot(stack.pids, stack.markers))
            caches = hit_ratios(caches_before, read_counters(metrics_urls(workdir)))
            cpu["k6"] = children_seconds() - k6_before
            integrity = _check_integrity(stack, shards, workdir)
    except (StackError, ConfigError) as exc:
        console.print(f"[red]loadtest: {exc}[/]")
        raise typer.Exit(2) from None
    outcome = _Outcome(shards, codes, cpu, integrity, memory, over_time, caches, flame_graphs)
    _report(console, out, scenario, outcome)


def _check_integrity(stack: Stack, shards: list[Shard], workdir: Path) -> Integrity:
    """Every post k6 got a 201 for, in PostgreSQL and in followers' feeds (through the
    gateway, trusting the certificate the system was started with)."""
    cafile = Path(stack.settings.gateway_tls_cert_file or workdir / "tls" / "gateway.crt")
    return check_sync(
        stack.settings.require_database_url(),
        stack.gateways[0],
        [s.ledger for s in shards],
        cafile if cafile.exists() else None,
    )


def _k6_overrides(
    duration: str, ramp: str, rate_per_user: float, refresh_after: float, min_rps: float
) -> dict[str, str]:
    """The scenario settings the command line overrides (k6 reads them from its environment)."""
    return {
        name: value
        for name, value in {
            "DURATION": duration,
            "RAMP": ramp,
            "RATE_PER_USER": str(rate_per_user) if rate_per_user else "",
            "REFRESH_AFTER_S": str(refresh_after) if refresh_after else "",
            "MIN_RPS": str(min_rps) if min_rps >= 0 else "",
        }.items()
        if value
    }


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a run left: the k6 shards and their exit codes, CPU seconds, the integrity check."""

    shards: list[Shard]
    codes: list[int]
    cpu: dict[str, float]
    integrity: Integrity
    memory: dict[str, Any]
    timeline: dict[str, Any]
    caches: dict[str, Any] = field(default_factory=dict)  # agora.loadtest.caches.hit_ratios
    flame_graphs: list[Path] = field(default_factory=list)


def _report(console: Console, out: Path, scenario: str, outcome: _Outcome) -> None:
    """Merge the k6 summaries, write and print the report; exit 1 on any failed check."""
    shards, codes, integrity = outcome.shards, outcome.codes, outcome.integrity
    if any(code < 0 or code == K6_INTERRUPTED for code in codes):
        console.print(
            f"[red]loadtest: k6 ran {END_GRACE_S:.0f} s past the run's length and was stopped "
            f"(exit {codes}): k6 1.1's WebSocket teardown hang, grafana/k6#4598[/]"
        )
    summaries, from_live = _summaries(shards)
    if from_live:
        console.print(
            f"[yellow]loadtest: k6 process(es) {from_live} wrote no summary; their figures are "
            "k6's live metrics as last polled (no p(99) or per-group counts; thresholds as "
            "k6's running verdict)[/]"
        )
    metrics = merge(summaries)
    if len(summaries) != len(shards):
        # A k6 that hung or was killed leaves no summary; the harness's own figures (memory,
        # CPU, timeline, integrity) were taken all the same, and an hour's soak must not
        # lose them with it.
        _write(out, scenario, outcome, metrics, integrity, from_live=from_live)
        _print_system(console, outcome, integrity)
        logs = ", ".join(str(s.log) for s in shards)
        console.print(f"[red]loadtest: k6 wrote no summary (exit {codes}); see {logs}[/]")
        raise typer.Exit(1)
    counted = int(metrics.get("posts_created", {}).get("values", {}).get("count", 0))
    # The ledger may name more than the counter: a 201 that came in as k6 stopped still
    # logs its id, while its counter sample lands after k6 stopped collecting. Every such
    # post is checked all the same; only a 201 the ledger does not name is unverifiable.
    if counted > integrity.acknowledged:
        console.print(
            f"[red]loadtest: k6 counted {counted} created posts but its ledger names "
            f"{integrity.acknowledged}; the integrity check cannot vouch for the rest[/]"
        )
        integrity = replace(integrity, unledgered=counted - integrity.acknowledged)
    _write(out, scenario, outcome, metrics, integrity, from_live=from_live)
    _print_system(console, outcome, integrity)
    passed = print_summary(console, metrics, lost_writes=integrity.lost_writes)
    console.print(f"HTML report(s): {', '.join(str(s.report) for s in shards)}")
    console.print(f"JSON summary: {out / 'summary.json'}")
    unexpected = [code for code in codes if code not in (0, THRESHOLDS_FAILED)]
    if unexpected:
        console.print(f"[red]k6 failed (exit {codes}); see {out}/k6-*.log[/]")
    if not passed or unexpected or from_live or not integrity.proven:
        raise typer.Exit(1)


def _summaries(shards: list[Shard]) -> tuple[list[dict[str, Any]], list[int]]:
    """Each shard's summary, or else its last live answer; and which shards gave the latter."""
    summaries, from_live = [], []
    for shard in shards:
        if shard.summary.exists():
            summaries.append(json.loads(shard.summary.read_text()))
        elif shard.live.exists():
            summaries.append(summary_from_live(json.loads(shard.live.read_text())))
            from_live.append(shard.index)
    return summaries, from_live


def _write(
    out: Path,
    scenario: str,
    outcome: _Outcome,
    metrics: dict[str, Any],
    integrity: Integrity,
    *,
    from_live: list[int],
) -> None:
    write_summary(
        metrics,
        out,
        scenario=scenario,
        lost_writes=integrity.lost_writes,
        exit_codes=outcome.codes,
        cpu_seconds=outcome.cpu,
        memory=outcome.memory,
        timeline=outcome.timeline,
        caches=outcome.caches,
        from_live=from_live,
    )


def _share(ratio: float | None) -> str:
    return "—" if ratio is None else f"{100 * ratio:.1f}%"


def _print_system(console: Console, outcome: _Outcome, integrity: Integrity) -> None:
    """What the harness measured itself: flame graphs, CPU, caches, integrity, memory, the
    timeline."""
    for svg in outcome.flame_graphs:
        console.print(f"flame graph: {svg}")
    console.print(
        "CPU seconds during the run: "
        + " · ".join(f"{group} {seconds:,.1f}" for group, seconds in outcome.cpu.items())
    )
    if outcome.caches:
        console.print(
            "cache hit ratio: "
            + " · ".join(
                f"{name} {_share(c['hit_ratio'])} of {c['lookups']:,.0f}"
                for name, c in outcome.caches.items()
            )
        )
    console.print(
        f"integrity: {integrity.acknowledged:,} acknowledged posts, "
        f"{integrity.missing_in_database} missing in PostgreSQL, "
        f"{integrity.missing_in_feeds} of {integrity.feeds_checked} sampled followers' feeds "
        f"without the post, {integrity.unverified} feeds unreadable"
    )
    if not integrity.proven:
        console.print("[red]integrity: some feeds could not be read; 0 lost writes is unproven[/]")
    print_memory(console, outcome.memory)
    print_timeline(console, outcome.timeline)


if __name__ == "__main__":
    app()
