"""Renders the gateway's Envoy configuration from the one template in ``deploy/envoy/``.

The template holds the policy (routes, filters, timeouts, breakers, health checks); this module
only supplies what differs between topologies — where the services are, which ports to listen
on, the certificate, the limits and the tracing endpoint — all from ``Settings``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2

from agora.config import DEFAULT_PORTS, ConfigError, ServiceName, Settings

SERVICES: tuple[ServiceName, ...] = tuple(DEFAULT_PORTS)
# Below the services' keep-alive (75 s by default): the gateway closes an idle upstream
# connection before the service does, so it never sends a request into a closing socket.
IDLE_TIMEOUT_S = 60
ROUTE_TIMEOUT_S = 15
HSTS = "max-age=63072000; includeSubDomains"
MAX_TRACKED_CLIENTS = 10_000

# Envoy's own replies, mapped to the services' error contract (first match wins).
LOCAL_REPLIES: tuple[tuple[str, int, str, str], ...] = (
    ("EQ", 401, "unauthenticated", "%LOCAL_REPLY_BODY%"),
    ("EQ", 403, "forbidden", "%LOCAL_REPLY_BODY%"),
    ("EQ", 404, "not_found", "no such resource"),
    ("EQ", 408, "request_timeout", "the request was not received in time"),
    ("EQ", 413, "payload_too_large", "the request body is too large"),
    ("EQ", 429, "rate_limited", "too many requests; slow down"),
    ("EQ", 503, "unavailable", "the service is unavailable; try again shortly"),
    ("GE", 500, "gateway_error", "the gateway could not complete the request"),
    ("GE", 400, "bad_request", "the request is not valid"),
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Topology:
    """Where the gateway listens and where each service's instances are."""

    listen_address: str
    upstreams: Mapping[ServiceName, Sequence[Endpoint]]
    # Resolve hosts by DNS and follow their records (container or service names), instead of
    # fixed addresses.
    dns: bool = False


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class HealthCheck:
    interval_s: float = 1.0
    unhealthy_threshold: int = 2


def local_topology(ports: Mapping[ServiceName, Sequence[int]]) -> Topology:
    """The processes of `agora up` (or of a test) on this host."""
    return Topology(
        listen_address="127.0.0.1",
        upstreams={name: [Endpoint("127.0.0.1", p) for p in ports[name]] for name in SERVICES},
    )


def container_topology(hosts: Mapping[ServiceName, Endpoint] | None = None) -> Topology:
    """Production: services by container/service name on their contract ports; every address
    a name resolves to is an instance."""
    defaults = {name: Endpoint(name, DEFAULT_PORTS[name]) for name in SERVICES}
    chosen = {**defaults, **(hosts or {})}
    return Topology(
        listen_address="0.0.0.0",  # noqa: S104  # nosec B104 # in its container, behind its ports
        upstreams={name: [chosen[name]] for name in SERVICES},
        dns=True,
    )


def tls_files_from_settings(settings: Settings) -> TlsFiles | None:
    if settings.gateway_tls_cert_file is None or settings.gateway_tls_key_file is None:
        return None
    return TlsFiles(Path(settings.gateway_tls_cert_file), Path(settings.gateway_tls_key_file))


def template_text() -> str:
    return (resources.files("agora.gateway") / "envoy.yaml.j2").read_text(encoding="utf-8")


def _otlp(endpoint: str | None) -> dict[str, Any] | None:
    if endpoint is None:
        return None
    parts = urlsplit(endpoint)  # an http(s) URL with a host: Settings validated it
    tls = parts.scheme == "https"
    return {
        "uri": endpoint.rstrip("/") + "/v1/traces",
        "host": parts.hostname or "",
        "port": parts.port or (443 if tls else 80),
        "tls": tls,
    }


def _cors(origins: Sequence[str]) -> dict[str, Any] | None:
    if not origins:
        return None
    return {"origins": [o for o in origins if o != "*"], "any_origin": "*" in origins}


def jwks_cache_s(settings: Settings) -> int:
    """Half the lead a new signing key is published before it signs: the gateway always
    holds a new key before the first token it signed arrives."""
    lead = settings.signing_key_refresh_s + settings.jwks_refetch_cooldown_s
    return max(1, min(300, int(lead / 2)))


WEBSOCKET_CLUSTER = "realtime_ws"


def admission_bounds(
    settings: Settings, topology: Topology, service: ServiceName
) -> dict[str, int]:
    """One HTTP cluster's circuit-breaker thresholds. HTTP/1.1 upstream carries one request per
    connection, so connections bound what the instances work on (AGORA_MAX_IN_FLIGHT each,
    the services' own bound: theirs is then rarely reached); pending requests wait inside
    Envoy, where waiting is cheap, and past both Envoy refuses at once (503 `overloaded`)."""
    instances = (
        settings.gateway_instances_per_service if topology.dns else len(topology.upstreams[service])
    )
    working = instances * settings.max_in_flight
    waiting = instances * settings.gateway_queue_per_instance
    return {
        "max_connections": working,
        "max_pending_requests": waiting,
        "max_requests": working + waiting,
    }


def websocket_cluster(settings: Settings, topology: Topology) -> dict[str, Any]:
    """realtime's instances once more, as the cluster only ``/ws`` uses. Each open WebSocket
    holds one upstream connection for its whole life; in the HTTP cluster 1,024 of them took
    every connection its breaker allows, and HTTP to realtime queued behind them with no
    answer. Here sockets have their own budget, and only an eighth of it may wait for a
    connection (an upgrade waits while its connection is being made; the route has no
    timeout, so a full budget would hold waiters for as long as the sockets live): beyond
    that an upgrade is refused at once with 503."""
    return {
        "name": WEBSOCKET_CLUSTER,
        "endpoints": topology.upstreams["realtime"],
        "max_connections": settings.gateway_max_websockets,
        "max_pending_requests": max(1, min(1024, settings.gateway_max_websockets // 8)),
        "max_requests": settings.gateway_max_websockets,
    }


def render_config(
    settings: Settings,
    topology: Topology,
    tls: TlsFiles,
    *,
    health_check: HealthCheck | None = None,
) -> str:
    missing = [name for name in SERVICES if not topology.upstreams.get(name)]
    if missing:
        raise ConfigError(f"gateway: no instances given for {', '.join(missing)}")
    production = settings.is_production
    listeners = [
        {"name": "http", "port": settings.gateway_http_port, "tls": False, "hsts": False,
         "redirect_to_https": production},
        {"name": "https", "port": settings.gateway_https_port, "tls": True, "hsts": production,
         "redirect_to_https": False},
    ]  # fmt: skip
    services = [
        {
            "name": name,
            "prefix": f"/api/v1/{name}",
            "jwt": name != "auth",
            # Docs are off in the services in production; in development they are open here.
            "docs": not production,
            "endpoints": topology.upstreams[name],
            # realtime's HTTP keeps this budget apart from the sockets' (websocket_cluster).
            **admission_bounds(settings, topology, name),
        }
        for name in SERVICES
    ]
    context = {
        "admin_port": settings.gateway_admin_port,
        "listen_address": topology.listen_address,
        "listeners": listeners,
        "services": services,
        "websocket_cluster": websocket_cluster(settings, topology),
        "request_timeout_s": settings.gateway_request_timeout_s,
        "dns": topology.dns,
        "tls": {"cert_file": str(tls.cert_file), "key_file": str(tls.key_file)},
        "hsts": HSTS,
        "https_redirect_port": settings.gateway_public_https_port,
        "idle_timeout_s": min(IDLE_TIMEOUT_S, settings.keep_alive_timeout_s - 5),
        "route_timeout_s": ROUTE_TIMEOUT_S,
        "trusted_hops": settings.gateway_trusted_hops,
        "cors": _cors(settings.cors_origins),
        "ratelimit": {
            "client_rps": settings.gateway_client_rps,
            "client_burst": 2 * settings.gateway_client_rps,
            "total_rps": settings.gateway_total_rps,
            "total_burst": 2 * settings.gateway_total_rps,
            "max_clients": MAX_TRACKED_CLIENTS,
        },
        "jwt": {
            "issuer": settings.jwt_issuer,
            "audience": settings.jwt_audience,
            "leeway_s": settings.jwt_leeway_s,
            "jwks_uri": "http://auth/api/v1/auth/.well-known/jwks.json",
            "cache_s": jwks_cache_s(settings),
        },
        "health_check": health_check or HealthCheck(),
        "fault_injection": settings.effective_gateway_fault_injection,
        "trace_sample_percent": round(100 * settings.effective_trace_sample_ratio, 3),
        "otlp": _otlp(settings.otlp_endpoint),
        "local_replies": [
            {"op": op, "status": status, "code": code, "message": message}
            for op, status, code, message in LOCAL_REPLIES
        ],
    }
    # YAML, not HTML: every string value goes through the template's `tojson`.
    environment = jinja2.Environment(  # nosec B701 # YAML: HTML escaping would corrupt it
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701
    )
    return environment.from_string(template_text()).render(context)
