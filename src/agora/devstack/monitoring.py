"""`agora up --monitoring`: Prometheus, Alertmanager, node_exporter and postgres_exporter on
loopback, scraping every instance `agora up` runs, with a local webhook for notifications.

The configuration is deploy/'s own, rendered for this run: ports, absolute paths, the scrape
interval and group wait from Settings, and every Alertmanager receiver replaced by the local
webhook (the routing tree, inhibitions and time intervals stay as they are). Targets are
written as file-based service discovery, so `--replicas N` needs no edit.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from agora.config import Settings
from agora.devstack.embedded import port_is_free
from agora.devstack.supervisor import Instance, Supervisor
from agora.devstack.webhook import WebhookReceiver

DEPLOY_DIR = Path(__file__).resolve().parents[3] / "deploy"
# binary -> Debian package that provides it (`make monitoring-tools` installs them).
REQUIRED_TOOLS = {"prometheus": "prometheus", "prometheus-alertmanager": "prometheus-alertmanager"}
EXPORTERS = {
    "prometheus-node-exporter": "prometheus-node-exporter",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
}
DEFAULT_PORTS = {
    "prometheus": 9090,
    "alertmanager": 9093,
    "webhook": 9095,
    "node-exporter": 9100,
    "postgres-exporter": 9187,
}
NODE_COLLECTORS = ("cpu", "meminfo", "filesystem", "netdev", "loadavg", "textfile")


def missing(tools: dict[str, str]) -> list[str]:
    return [package for binary, package in tools.items() if shutil.which(binary) is None]


def install_hint(packages: list[str]) -> str:
    return (
        f"{', '.join(packages)} not installed: run `make monitoring-tools` "
        f"(or apt-get install {' '.join(packages)})"
    )


def _pick_port(preferred: int, taken: set[int]) -> int:
    port = preferred
    while port in taken or not port_is_free(port):
        port += 1
    taken.add(port)
    return port


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@dataclass
class Monitoring:
    directory: Path
    processes: list[Instance]
    webhook: WebhookReceiver
    prometheus_url: str
    alertmanager_url: str
    skipped: list[str]

    @property
    def notifications(self) -> Path:
        return self.webhook.log_path


def write_targets(directory: Path, groups: dict[str, list[dict[str, Any]]]) -> None:
    """One file_sd JSON file per job; Prometheus re-reads them when they change."""
    directory.mkdir(parents=True, exist_ok=True)
    for job, entries in groups.items():
        tmp = directory / f".{job}.json.tmp"
        tmp.write_text(json.dumps(entries, indent=2))
        tmp.replace(directory / f"{job}.json")  # atomic: never a half-written file


def service_targets(instances: list[Instance]) -> list[dict[str, Any]]:
    by_service: dict[str, list[str]] = {}
    for instance in instances:
        if instance.service in ("auth", "posts", "realtime"):
            by_service.setdefault(instance.service, []).append(f"127.0.0.1:{instance.port}")
    return [{"targets": t, "labels": {"service": s}} for s, t in by_service.items()]


def render_prometheus(
    settings: Settings, directory: Path, ports: dict[str, int], exporters: set[str]
) -> Path:
    config = _load(DEPLOY_DIR / "prometheus" / "prometheus.yml")
    interval = _duration(settings.monitoring_scrape_interval_s)
    config["global"].update(
        scrape_interval=interval,
        evaluation_interval=interval,
        scrape_timeout=_duration(min(10.0, settings.monitoring_scrape_interval_s)),
    )
    config["rule_files"] = [str(render_rules(settings.monitoring_time_scale, directory))]
    am = f"127.0.0.1:{ports['alertmanager']}"
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [am]}]}]
    self_targets = {"prometheus": ports["prometheus"], "alertmanager": ports["alertmanager"]}
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name in self_targets:
            job["static_configs"][0]["targets"] = [f"127.0.0.1:{self_targets[name]}"]
        elif name in ("node", "postgres") and f"{name}-exporter" not in exporters:
            continue  # not installed: the rest still runs (its target-missing alert says so)
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(directory / "targets" / Path(f).name) for f in sd["files"]]
        jobs.append(job)
    config["scrape_configs"] = jobs
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


_RANGE = re.compile(r"\[(\d+)([smhdw])\]")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Never shorter than two of Envoy's 5 s stats flushes (its histograms move only then).
MIN_RANGE_S = 10


def _scaled(text: str, scale: float, floor: float = 1.0) -> str:
    return _duration(max(floor, round(_seconds(text) * scale)))


def scale_expr(expr: str, scale: float) -> str:
    def replace(match: re.Match[str]) -> str:
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
        return f"[{_duration(max(MIN_RANGE_S, round(seconds * scale)))}]"

    return _RANGE.sub(replace, expr)


def render_rules(scale: float, directory: Path) -> Path:
    """deploy/'s rule files, or (scale < 1: the fast game day) copies with every ``for:`` and
    range window multiplied by ``scale``: the same alerts on a compressed clock."""
    source = DEPLOY_DIR / "prometheus" / "rules"
    if scale == 1.0:
        return source / "*.rules.yml"
    target = directory / "rules"
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.rules.yml")):
        data = _load(path)
        for group in data["groups"]:
            for rule in group["rules"]:
                rule["expr"] = scale_expr(str(rule["expr"]), scale)
                if "for" in rule:
                    rule["for"] = _scaled(rule["for"], scale)
        (target / path.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return target / "*.rules.yml"


def _scale_intervals(route: dict[str, Any], scale: float) -> None:
    for key in ("group_interval", "repeat_interval"):
        if key in route:
            route[key] = _scaled(route[key], scale)
    for child in route.get("routes", []):
        _scale_intervals(child, scale)


def _cap_group_wait(route: dict[str, Any], cap: float, inherited: float) -> None:
    own = route.get("group_wait")
    wait = min(cap, _seconds(own) if own else inherited)
    route["group_wait"] = _duration(wait)
    for child in route.get("routes", []):
        _cap_group_wait(child, cap, wait)


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported duration {text!r}")


def render_alertmanager(settings: Settings, directory: Path, webhook_url: str) -> Path:
    config = _load(DEPLOY_DIR / "alertmanager" / "alertmanager.yml")
    config["global"] = {"resolve_timeout": config["global"].get("resolve_timeout", "5m")}
    config["templates"] = [str(DEPLOY_DIR / "alertmanager" / "templates" / "*.tmpl")]
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": f"{webhook_url}/{r['name']}"}]}
        for r in config["receivers"]
    ]
    _cap_group_wait(config["route"], settings.monitoring_group_wait_s, 30.0)
    if settings.monitoring_time_scale != 1.0:
        _scale_intervals(config["route"], settings.monitoring_time_scale)
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _postgres_dsn(database_url: str) -> str:
    """lib/pq (postgres_exporter) asks for TLS unless told otherwise."""
    if "sslmode=" in database_url:
        return database_url
    return database_url + ("&" if "?" in database_url else "?") + "sslmode=disable"


def plan(
    settings: Settings,
    workdir: Path,
    instances: list[Instance],
    database_url: str,
) -> tuple[Monitoring | None, list[str]]:
    """The monitoring processes (not started) and what was left out; None when Prometheus or
    Alertmanager is not installed."""
    absent = missing(REQUIRED_TOOLS)
    if absent:
        return None, [install_hint(absent + missing(EXPORTERS))]
    directory = workdir / "monitoring"
    directory.mkdir(parents=True, exist_ok=True)
    taken = {i.port for i in instances}
    # A stack on shifted ports (`agora up --port-base`) shifts these the same way: it stays
    # off the contract ports 9090/9093 that the first stack uses.
    shift = min((i.port for i in instances if i.service == "auth"), default=8080) - 8080
    ports = {name: _pick_port(port + shift, taken) for name, port in DEFAULT_PORTS.items()}
    exporters = {name.removeprefix("prometheus-") for name in EXPORTERS if shutil.which(name)}
    skipped = [] if len(exporters) == len(EXPORTERS) else [install_hint(missing(EXPORTERS))]
    targets: dict[str, list[dict[str, Any]]] = {
        "agora": service_targets(instances),
        "gateway": [
            {
                "targets": [f"127.0.0.1:{settings.gateway_admin_port}"],
                "labels": {"service": "gateway"},
            }
        ],
    }
    processes = []
    if "node-exporter" in exporters:
        textfile = workdir / "textfile"
        textfile.mkdir(parents=True, exist_ok=True)
        port = ports["node-exporter"]
        targets["node"] = [{"targets": [f"127.0.0.1:{port}"], "labels": {"service": "host"}}]
        argv = [
            "prometheus-node-exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            *(f"--collector.{c}" for c in NODE_COLLECTORS),
            f"--collector.textfile.directory={textfile}",
        ]
        processes.append(Instance("node-exporter", 1, port, argv=argv, ready_path="/metrics"))
    if "postgres-exporter" in exporters:
        port = ports["postgres-exporter"]
        address = f"127.0.0.1:{port}"
        targets["postgres"] = [{"targets": [address], "labels": {"service": "postgres"}}]
        argv = [
            "prometheus-postgres-exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--extend.query-path={DEPLOY_DIR / 'prometheus' / 'postgres-exporter-queries.yml'}",
            "--disable-settings-metrics",
        ]
        processes.append(
            Instance(
                "postgres-exporter",
                1,
                port,
                argv=argv,
                ready_path="/metrics",
                extra_env={"DATA_SOURCE_NAME": _postgres_dsn(database_url)},
            )
        )
    write_targets(directory / "targets", targets)
    webhook = WebhookReceiver(ports["webhook"], directory / "notifications.jsonl")
    am_port, prom_port = ports["alertmanager"], ports["prometheus"]
    am_config = render_alertmanager(settings, directory, webhook.url)
    processes.append(
        Instance(
            "alertmanager",
            1,
            am_port,
            argv=[
                "prometheus-alertmanager",
                f"--config.file={am_config}",
                f"--storage.path={directory / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            ready_path="/-/ready",
        )
    )
    prom_config = render_prometheus(settings, directory, ports, exporters)
    processes.append(
        Instance(
            "prometheus",
            1,
            prom_port,
            argv=[
                "prometheus",
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={directory / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--web.enable-lifecycle",
            ],
            ready_path="/-/ready",
        )
    )
    for process in processes:
        process.log_path = directory / f"{process.service}.log"
    return (
        Monitoring(
            directory,
            processes,
            webhook,
            f"http://127.0.0.1:{prom_port}",
            f"http://127.0.0.1:{am_port}",
            skipped,
        ),
        skipped,
    )


def start(
    settings: Settings,
    workdir: Path,
    instances: list[Instance],
    database_url: str,
    *,
    supervisor: Supervisor,
    console: Console,
) -> Monitoring | None:
    """Start what is installed (supervised like the services); say what is not."""
    stack, notes = plan(settings, workdir, instances, database_url)
    for note in notes:
        console.print(f"[yellow]monitoring: {note}; starting the rest without it[/]")
    if stack is None:
        return None
    stack.webhook.start()
    for process in stack.processes:
        if supervisor.stopping:
            break
        console.print(f"starting {process.service} on port {process.port}…")
        instances.append(process)
        supervisor.start(process)
    return stack


def print_summary(console: Console, stack: Monitoring) -> None:
    console.print(
        f"[bold]Monitoring[/]: Prometheus {stack.prometheus_url} · Alertmanager "
        f"{stack.alertmanager_url} · notifications (Slack/PagerDuty/e-mail stand-in) "
        f"{stack.webhook.url}, logged to {stack.notifications}"
    )
