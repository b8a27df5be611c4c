"""The game day's faults: how each is injected, which alert must answer it, and the runbook's
step that ends it (or nothing, when the system heals itself)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import psycopg

from agora.gameday.load import Load
from agora.gameday.stack import Stack, wait_for
from agora.gateway.chaos import Chaos, Fault

SERVICES = frozenset({"auth", "posts", "realtime"})


@dataclass(frozen=True)
class Expect:
    """An alert that answers the fault: ``alertname`` with these labels (a set: any of)."""

    alertname: str
    labels: dict[str, frozenset[str]] = field(default_factory=dict)

    def matches(self, labels: dict[str, str]) -> bool:
        return labels.get("alertname") == self.alertname and all(
            labels.get(k) in v for k, v in self.labels.items()
        )

    def describe(self) -> str:
        shown = ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in self.labels.items())
        return f"{self.alertname}{{{shown}}}"


def one(value: str) -> frozenset[str]:
    return frozenset({value})


@dataclass
class Context:
    stack: Stack
    load: Load
    chaos: Chaos
    # What a scenario leaves to undo (threads, connections).
    cleanup: list[Callable[[], None]] = field(default_factory=list)


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    inject: Callable[[Context], list[Expect]]
    # The runbook's automated step, applied once the alert has come (None: heals itself).
    remedy: Callable[[Context], None] | None
    # A surviving instance serves: the error budget applies (< 0.1% of the load).
    surviving_instance: bool
    runbook: str


def _kill_instance(ctx: Context) -> list[Expect]:
    port = ctx.stack.targets("posts")[1]
    ctx.stack.instance_process(port).send_signal(signal.SIGKILL)
    instance = one(f"127.0.0.1:{port}")
    return [
        Expect("AgoraServiceDown", {"service": one("posts"), "instance": instance}),
        Expect("AgoraInstanceRestarted", {"service": one("posts"), "instance": instance}),
    ]


def _stop_postgres(ctx: Context) -> list[Expect]:
    ctx.stack.postgres.stop_server()
    return [Expect("AgoraDependencyDown", {"dependency": one("postgres"), "service": SERVICES})]


def _start_postgres(ctx: Context) -> None:
    ctx.stack.postgres.start_server()


def _stop_redis(ctx: Context) -> list[Expect]:
    for node in ctx.stack.redis.data_nodes():
        node.kill()
    return [Expect("AgoraDependencyDown", {"dependency": one("redis"), "service": SERVICES})]


def _start_redis(ctx: Context) -> None:
    master_port = ctx.stack.redis.current_master_port()
    nodes = ctx.stack.redis.data_nodes()
    # The master the sentinels know first, then the other (they make it its replica).
    nodes.sort(key=lambda n: n.port != master_port)
    for node in nodes:
        node.start()
    wait_for(ctx.stack.redis.writable, 60, "Redis writable through Sentinel")


def _failover(ctx: Context) -> list[Expect]:
    redis = ctx.stack.redis
    port = redis.current_master_port()
    if port is None:
        raise RuntimeError("no master known to the sentinels")
    redis.node_on(port).kill()
    ctx.cleanup.append(lambda: _restart_old_master(ctx, port))
    return []  # a failover that heals itself in seconds pages no one


def _restart_old_master(ctx: Context, port: int) -> None:
    wait_for(lambda: ctx.stack.redis.current_master_port() not in (None, port), 60, "failover")
    ctx.stack.redis.node_on(port).start()  # the sentinels turn it into the new replica


def _fault(route: str, kind: str, percent: int, value: int) -> Callable[[Context], list[Expect]]:
    def inject(ctx: Context) -> list[Expect]:
        ctx.chaos.set(Fault(route, kind, percent, value))  # type: ignore[arg-type]
        alert = "AgoraGatewayHighLatency" if kind == "delay" else "AgoraGatewayHighErrorRate"
        return [Expect(alert, {"service": one("gateway")})]

    return inject


def _faults_off(ctx: Context) -> None:
    ctx.chaos.clear(["posts"])


def _exhaust_pool(ctx: Context) -> list[Expect]:
    """A session holds a lock on notifications; one posts instance's every connection waits
    on it behind requests sent to that instance directly."""
    port = ctx.stack.targets("posts")[2]
    lock = psycopg.connect(ctx.stack.database_url, autocommit=False)
    lock.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
    stop = threading.Event()
    token = ctx.load.token

    def hammer() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get(
                        "/api/v1/posts/notifications",
                        headers={"Authorization": f"Bearer {token}"},
                    )

    workers = [threading.Thread(target=hammer, daemon=True) for _ in range(24)]
    for worker in workers:
        worker.start()

    def undo() -> None:
        stop.set()
        with contextlib.suppress(psycopg.Error):
            lock.rollback()
        lock.close()
        for worker in workers:
            worker.join(timeout=20)

    ctx.cleanup.append(undo)
    return [
        Expect(
            "AgoraDBPoolExhausted",
            {"service": one("posts"), "instance": one(f"127.0.0.1:{port}"), "pool": one("primary")},
        )
    ]


def _terminate_blocker(ctx: Context) -> None:
    """The runbook's step: end the session that holds the lock everyone waits for."""
    with psycopg.connect(ctx.stack.database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c"
            " ON c.oid = l.relation WHERE c.relname = 'notifications'"
            " AND l.mode = 'AccessExclusiveLock' AND l.granted"
        )
    for undo in ctx.cleanup:
        undo()
    ctx.cleanup.clear()


def _drop_websockets(ctx: Context) -> list[Expect]:
    ctx.load.drop_websockets()
    return [Expect("AgoraWebSocketConnectionsDropping", {"service": one("realtime")})]


def _reconnect(ctx: Context) -> None:
    ctx.load.resume_websockets()


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("kill-instance", "SIGKILL one of three posts instances", _kill_instance, None,
                 True, "agoraservicedown"),
        Scenario("stop-postgres", "PostgreSQL stopped (immediate)", _stop_postgres,
                 _start_postgres, False, "agoradependencydown"),
        Scenario("stop-redis", "Redis master and replica stopped", _stop_redis, _start_redis,
                 False, "agoradependencydown"),
        Scenario("sentinel-failover", "Redis master SIGKILLed; Sentinel promotes the replica",
                 _failover, None, False, "redis-failover"),
        Scenario("gateway-latency", "800 ms added to every posts read at the gateway",
                 _fault("posts", "delay", 100, 800), _faults_off, True, "agoragatewayhighlatency"),
        Scenario("gateway-errors", "503 for 30% of posts reads at the gateway",
                 _fault("posts", "abort", 30, 503), _faults_off, False,
                 "agoragatewayhigherrorrate"),
        Scenario("pool-exhaustion", "one posts instance's pool held by a lock",
                 _exhaust_pool, _terminate_blocker, True, "agoradbpoolexhausted"),
        Scenario("websocket-disconnect", "every WebSocket cut at once, clients stay away",
                 _drop_websockets, _reconnect, True, "agorawebsocketconnectionsdropping"),
    )
}  # fmt: skip
