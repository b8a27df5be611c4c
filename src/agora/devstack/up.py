"""`agora up`: dependencies (configured or embedded), migrations, then every service instance."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agora.config import DEFAULT_PORTS, ConfigError, ServiceName, Settings
from agora.db.migrate import upgrade_to_head
from agora.devstack import monitoring as monitoring_stack
from agora.devstack.dependencies import EmbeddedWatch
from agora.devstack.embedded import EmbeddedServers, port_is_free
from agora.devstack.lock import AlreadyRunning, UpLock
from agora.devstack.supervisor import Instance, Supervisor
from agora.gateway.config import local_topology
from agora.gateway.process import envoy_argv, write_config
from agora.resilience.remote import STATE_FILE

SERVICES: tuple[ServiceName, ...] = ("auth", "posts", "realtime")
FIRST_EXTRA_PORT = 8083
# Connections PostgreSQL keeps for superusers, migrations and operators (default
# max_connections is 100); every service process shares the rest evenly.
DB_CONNECTION_BUDGET = 90


def plan_instances(replicas: int, port_base: int | None = None) -> list[Instance]:
    """Contract ports for the first instance of each service; later ones take the next free
    ports from 8083 upward. With ``port_base`` (a stack beside another one, e.g. the game
    day's), the first instances take port_base, +1, +2 and later ones the next free ports."""
    instances: list[Instance] = []
    for offset, service in enumerate(SERVICES):
        port = DEFAULT_PORTS[service] if port_base is None else port_base + offset
        if not port_is_free(port):
            raise RuntimeError(f"port {port} for {service} is already in use")
        instances.append(Instance(service, 1, port))
    taken = {i.port for i in instances}
    candidate = FIRST_EXTRA_PORT if port_base is None else port_base + len(SERVICES)
    for index in range(2, replicas + 1):
        for service in SERVICES:
            while candidate in taken or not port_is_free(candidate):
                candidate += 1
            instances.append(Instance(service, index, candidate))
            taken.add(candidate)
    return instances


def plan_gateway(settings: Settings, instances: list[Instance], workdir: Path) -> Instance:
    """Envoy in front of every instance: its configuration rendered for these ports (and a
    development certificate under ``workdir/tls``), supervised like the services."""
    for name, port in (
        ("gateway HTTP", settings.gateway_http_port),
        ("gateway HTTPS", settings.gateway_https_port),
        ("gateway admin", settings.gateway_admin_port),
    ):
        if not port_is_free(port):
            raise RuntimeError(f"port {port} for the {name} listener is already in use")
    ports = {name: [i.port for i in instances if i.service == name] for name in SERVICES}
    config = write_config(settings, local_topology(ports), workdir)
    return Instance(
        "gateway", 1, settings.gateway_admin_port, argv=envoy_argv(config), ready_path="/ready"
    )


def pool_size_per_process(replicas: int) -> int:
    """Each process's share of the budget, never above the pool's own default maximum."""
    default_max: int = Settings.model_fields["db_pool_max_size"].default
    return max(2, min(default_max, DB_CONNECTION_BUDGET // (len(SERVICES) * replicas)))


def pool_env(env: dict[str, str], replicas: int) -> dict[str, str]:
    """Pool bounds for every process: the operator's if set, else the budget's share, with
    the default minimum idle lowered to fit under the maximum."""
    max_size = env.get("AGORA_DB_POOL_MAX_SIZE") or str(pool_size_per_process(replicas))
    default_min: int = Settings.model_fields["db_pool_min_size"].default
    min_size = env.get("AGORA_DB_POOL_MIN_SIZE") or str(min(default_min, int(max_size)))
    return {"AGORA_DB_POOL_MAX_SIZE": max_size, "AGORA_DB_POOL_MIN_SIZE": min_size}


def write_state(workdir: Path, instances: list[Instance]) -> Path:
    """Where ``agora breakers`` finds every instance of this stack (see its --help)."""
    path = workdir / STATE_FILE
    workdir.mkdir(parents=True, exist_ok=True)
    targets = [{"name": i.name, "url": i.url} for i in instances]
    path.write_text(json.dumps({"pid": os.getpid(), "instances": targets}, indent=2))
    return path


def run(
    settings: Settings,
    *,
    replicas: int,
    workdir: Path,
    monitoring: bool = False,
    port_base: int | None = None,
) -> int:
    console = Console(stderr=True)
    lock = UpLock(workdir)
    try:
        lock.acquire()  # before anything else: a running stack's files and ports are its own
    except AlreadyRunning as exc:
        console.print(f"[red]agora: {exc}[/]")
        return 1
    try:
        return _run_locked(
            settings,
            console,
            replicas=replicas,
            workdir=workdir,
            monitoring=monitoring,
            port_base=port_base,
        )
    finally:
        lock.release()


def _run_locked(
    settings: Settings,
    console: Console,
    *,
    replicas: int,
    workdir: Path,
    monitoring: bool,
    port_base: int | None,
) -> int:
    embedded = EmbeddedServers(workdir=workdir)
    supervisor: Supervisor | None = None
    stack: monitoring_stack.Monitoring | None = None
    try:
        stores = _stores(console, settings, embedded, workdir)
        console.print("[bold]Migrations[/]: applying…")
        upgrade_to_head(stores.database_url)

        instances = plan_instances(replicas, port_base)
        env = dict(os.environ)
        env.update({"AGORA_DATABASE_URL": stores.database_url, "AGORA_REDIS_URL": stores.redis_url})
        env.update(pool_env(env, replicas))
        write_state(workdir, instances)
        gateway = plan_gateway(settings, instances, workdir)
        supervisor = Supervisor(env=env, instances=instances)
        supervisor.install_signal_handlers()
        _start_all(console, supervisor, instances, gateway, settings.gateway_http_port)
        if monitoring and not supervisor.stopping:
            stack = monitoring_stack.start(
                settings,
                workdir,
                instances,
                stores.database_url,
                supervisor=supervisor,
                console=console,
            )
        if not supervisor.stopping:
            _print_summary(console, settings, workdir, instances, stores)
            if stack is not None:
                monitoring_stack.print_summary(console, stack)
            supervisor.watch(also=EmbeddedWatch(embedded).check)
        unclean = supervisor.stop_all()
        console.print("agora: all services stopped" + (f" ({unclean} unclean)" if unclean else ""))
    except (RuntimeError, ConfigError) as exc:
        console.print(f"[red]agora: {exc}[/]")
        if supervisor is not None:
            supervisor.stop_all()
        return 1
    else:
        return 0 if unclean == 0 else 1
    finally:
        (workdir / STATE_FILE).unlink(missing_ok=True)
        if stack is not None:
            stack.webhook.stop()
        embedded.stop()


@dataclass(frozen=True, slots=True)
class _Stores:
    """The PostgreSQL and Redis of this stack: configured, or embedded when not."""

    database_url: str
    redis_url: str
    embedded: EmbeddedServers


def _stores(
    console: Console, settings: Settings, embedded: EmbeddedServers, workdir: Path
) -> _Stores:
    database_url = settings.database_url
    if database_url is None:
        console.print(f"[bold]PostgreSQL[/]: none configured, starting embedded in {workdir}")
        database_url = embedded.start_postgres()
    redis_url = settings.redis_url
    if redis_url is None:
        console.print(f"[bold]Redis[/]: none configured, starting embedded in {workdir}")
        redis_url = embedded.start_redis()
    return _Stores(database_url, redis_url, embedded)


def _start_all(
    console: Console,
    supervisor: Supervisor,
    instances: list[Instance],
    gateway: Instance,
    gateway_port: int,
) -> None:
    """Every instance, then the gateway, unless a signal came meanwhile."""
    # auth first: it creates the first signing key that posts and realtime will fetch.
    for service in SERVICES:
        for instance in instances:
            if instance.service == service and not supervisor.stopping:
                console.print(f"starting {instance.name} on port {instance.port}…")
                supervisor.start(instance)
    if not supervisor.stopping:
        console.print(f"starting the gateway on port {gateway_port}…")
        instances.append(gateway)
        supervisor.start(gateway)


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        rest = f"{user}:***@{host}" if ":" in creds else f"{user}@{host}"
    return f"{scheme}{sep}{rest}"


def _print_summary(
    console: Console,
    settings: Settings,
    workdir: Path,
    instances: list[Instance],
    stores: _Stores,
) -> None:
    table = Table(title="Agora is up", title_justify="left")
    for column in ("instance", "url", "docs", "health / metrics"):
        table.add_column(column)
    for instance in instances:
        if instance.service not in SERVICES:
            continue
        docs = f"{instance.url}/api/v1/{instance.service}/docs"
        table.add_row(instance.name, instance.url, docs, f"{instance.url}/readyz · /metrics")
    gateway = f"http://127.0.0.1:{settings.gateway_http_port}"
    table.add_row(
        "gateway",
        f"{gateway} · https://127.0.0.1:{settings.gateway_https_port}",
        f"{gateway}/api/v1/auth/docs",
        f"admin http://127.0.0.1:{settings.gateway_admin_port}/ready · /stats",
    )
    console.print(table)
    console.print(
        f"[bold]Use the API through the gateway[/]: {gateway} (HTTPS with the self-signed "
        f"certificate in {settings.gateway_tls_cert_file or workdir / 'tls' / 'gateway.crt'})"
    )
    pg_kind = "embedded" if stores.embedded.database_url else "configured"
    redis_kind = "embedded" if stores.embedded.redis_url else "configured"
    console.print(f"PostgreSQL ({pg_kind}): {_redact(stores.database_url)}")
    console.print(f"Redis ({redis_kind}): {_redact(stores.redis_url)}")
    console.print("Press Ctrl-C to stop everything gracefully.", style="bold")
    sys.stderr.flush()
