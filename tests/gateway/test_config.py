"""The rendered configuration: valid for Envoy in every topology, and what each setting does."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic import ValidationError
from typer.testing import CliRunner

from agora.cli import app
from agora.config import ConfigError, ServiceName, Settings
from agora.devstack.supervisor import Instance
from agora.devstack.up import plan_gateway
from agora.gateway.certs import ensure_dev_certificate
from agora.gateway.config import (
    Endpoint,
    TlsFiles,
    container_topology,
    jwks_cache_s,
    local_topology,
    render_config,
)
from agora.gateway.process import resolve_tls, validate_config
from tests.conftest import free_port, production_settings

THREE_REPLICAS: dict[ServiceName, list[int]] = {
    "auth": [8080, 8083, 8086],
    "posts": [8081, 8084, 8087],
    "realtime": [8082, 8085, 8088],
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_dev_certificate(tmp_path_factory.mktemp("tls"))


def render(settings: Settings, tls: TlsFiles, **topology: Any) -> dict[str, Any]:
    text = render_config(settings, topology.get("topology") or local_topology(THREE_REPLICAS), tls)
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def cluster(config: dict[str, Any], name: str) -> dict[str, Any]:
    clusters: dict[str, dict[str, Any]] = {
        c["name"]: c for c in config["static_resources"]["clusters"]
    }
    return clusters[name]


def listener(config: dict[str, Any], name: str) -> dict[str, Any]:
    listeners = {item["name"]: item for item in config["static_resources"]["listeners"]}
    manager: dict[str, Any] = listeners[name]["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize("topology", ["local", "containers"])
def test_every_topology_passes_envoy_validation(
    env: Literal["development", "production"], topology: str, tls: TlsFiles, tmp_path: Path
) -> None:
    settings = (production_settings if env == "production" else Settings)(
        cors_origins=["https://app.example"],
        otlp_endpoint="http://collector:4318",
    )
    chosen = local_topology(THREE_REPLICAS) if topology == "local" else container_topology()
    path = tmp_path / "envoy.yaml"
    path.write_text(render_config(settings, chosen, tls))
    validate_config(path)  # raises with Envoy's message when invalid


def test_an_invalid_configuration_is_reported_with_envoys_reason(tmp_path: Path) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text("static_resources: {listeners: [{name: x, no_such_field: 1}]}\n")
    with pytest.raises(ConfigError, match="no_such_field"):
        validate_config(path)


def test_local_topology_lists_every_instance(tls: TlsFiles) -> None:
    config = render(Settings(), tls)
    posts = cluster(config, "posts")
    assert posts["type"] == "STATIC"
    ports = [
        e["endpoint"]["address"]["socket_address"]["port_value"]
        for e in posts["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ]
    assert ports == [8081, 8084, 8087]
    assert posts["health_checks"][0]["http_health_check"]["path"] == "/readyz"
    assert posts["health_checks"][0]["no_traffic_interval"]
    assert posts["outlier_detection"]["consecutive_5xx"] == 5
    assert posts["circuit_breakers"]["thresholds"][0]["retry_budget"]
    listen = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listen["address"] == "127.0.0.1"
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_container_topology_resolves_service_names(tls: TlsFiles) -> None:
    topology = container_topology({"posts": Endpoint("posts.internal", 9000)})
    config = render(Settings(), tls, topology=topology)
    posts = cluster(config, "posts")
    assert posts["type"] == "STRICT_DNS"
    address = posts["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "posts.internal", "port_value": 9000}
    auth = cluster(config, "auth")["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert auth["endpoint"]["address"]["socket_address"] == {"address": "auth", "port_value": 8080}


def test_idle_timeouts_stay_below_the_services_keep_alive(tls: TlsFiles) -> None:
    settings = Settings(keep_alive_timeout_s=30)
    config = render(settings, tls)
    upstream = cluster(config, "auth")["typed_extension_protocol_options"]
    options = upstream["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["common_http_protocol_options"]["idle_timeout"] == "25s"
    default = cluster(render(Settings(), tls), "auth")["typed_extension_protocol_options"]
    timeouts = default["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert timeouts["common_http_protocol_options"]["idle_timeout"] == "60s"  # under 75 s


def test_jwks_is_refetched_well_within_a_rotations_lead(tls: TlsFiles) -> None:
    settings = Settings(signing_key_refresh_s=30, jwks_refetch_cooldown_s=10)
    assert jwks_cache_s(settings) == 20
    filters = {f["name"]: f for f in listener(render(settings, tls), "http")["http_filters"]}
    jwt = filters["envoy.filters.http.jwt_authn"]["typed_config"]
    remote = jwt["providers"]["agora"]["remote_jwks"]
    assert remote["cache_duration"] == "20s"
    assert remote["http_uri"]["cluster"] == "auth"
    assert jwt["providers"]["agora"]["from_params"] == ["access_token"]


def test_wildcard_cors_never_allows_credentials(tls: TlsFiles) -> None:
    config = render(Settings(cors_origins=["*"]), tls)
    host = listener(config, "http")["route_config"]["virtual_hosts"][0]
    policy = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["allow_credentials"] is False
    named = render(Settings(cors_origins=["https://a.example", "https://b.example"]), tls)
    host = listener(named, "http")["route_config"]["virtual_hosts"][0]
    policy = host["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["allow_origin_string_match"] == [
        {"exact": "https://a.example"},
        {"exact": "https://b.example"},
    ]
    assert policy["allow_credentials"] is True
    no_cors = render(Settings(), tls)
    assert (
        "typed_per_filter_config"
        not in listener(no_cors, "http")["route_config"]["virtual_hosts"][0]
    )


def test_tracing_only_with_an_otlp_endpoint(tls: TlsFiles) -> None:
    assert "tracing" not in listener(render(Settings(), tls), "http")
    config = render(Settings(otlp_endpoint="https://otel.example/", trace_sample_ratio=0.1), tls)
    tracing = listener(config, "https")["tracing"]
    assert tracing["random_sampling"]["value"] == 10.0
    exporter = tracing["provider"]["typed_config"]["http_service"]["http_uri"]
    assert exporter["uri"] == "https://otel.example/v1/traces"
    otlp = cluster(config, "otlp")
    assert otlp["transport_socket"]["typed_config"]["sni"] == "otel.example"
    for bad in ("collector:4318", "http://"):
        with pytest.raises(ValidationError, match="with a host"):
            Settings(otlp_endpoint=bad)


def test_production_needs_its_own_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AGORA_GATEWAY_TLS_CERT_FILE"):
        resolve_tls(production_settings(), tmp_path)
    made = resolve_tls(Settings(), tmp_path)
    assert made.cert_file == tmp_path / "tls" / "gateway.crt"
    assert made.key_file.stat().st_mode & 0o077 == 0
    again = resolve_tls(Settings(), tmp_path)
    assert again.cert_file.read_bytes() == made.cert_file.read_bytes()  # reused, not remade


def test_cert_and_key_settings_go_together() -> None:
    with pytest.raises(ValueError, match="AGORA_GATEWAY_TLS_KEY_FILE"):
        Settings(gateway_tls_cert_file="/etc/tls.crt")


def test_cli_renders_a_valid_container_configuration(
    tmp_path: Path, tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGORA_ENV", "production")
    monkeypatch.setenv("AGORA_TRUSTED_PROXIES", "10.0.0.0/8")
    monkeypatch.setenv("AGORA_KEY_ENCRYPTION_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("AGORA_GATEWAY_TLS_CERT_FILE", str(tls.cert_file))
    monkeypatch.setenv("AGORA_GATEWAY_TLS_KEY_FILE", str(tls.key_file))
    out = tmp_path / "envoy.yaml"
    result = CliRunner().invoke(
        app, ["gateway", "render", "--upstream", "posts=posts.svc:8081", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(out.read_text())
    assert listener(config, "http")["route_config"]["virtual_hosts"][0]["routes"][0]["redirect"]
    bad = CliRunner().invoke(app, ["gateway", "render", "--upstream", "posts"])
    assert bad.exit_code == 2
    assert "SERVICE=HOST:PORT" in bad.output


def test_agora_up_plans_the_gateway_in_front_of_every_instance(tmp_path: Path) -> None:
    instances = plan_instances_on_free_ports()
    settings = Settings(
        gateway_http_port=free_port(),
        gateway_https_port=free_port(),
        gateway_admin_port=free_port(),
    )
    gateway = plan_gateway(settings, instances, tmp_path)
    assert gateway.argv is not None
    assert gateway.ready_path == "/ready"
    assert gateway.port == settings.gateway_admin_port
    config = yaml.safe_load((tmp_path / "gateway" / "envoy.yaml").read_text())
    for service in ("auth", "posts", "realtime"):
        endpoints = cluster(config, service)["load_assignment"]["endpoints"][0]["lb_endpoints"]
        ports = {e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints}
        assert ports == {i.port for i in instances if i.service == service}
    assert (tmp_path / "tls" / "gateway.key").exists()


def test_agora_up_refuses_a_busy_gateway_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = Settings(gateway_http_port=port)
        with pytest.raises(RuntimeError, match=f"port {port} for the gateway HTTP listener"):
            plan_gateway(settings, plan_instances_on_free_ports(), tmp_path)


def plan_instances_on_free_ports() -> list[Instance]:
    return [
        Instance(service, index, free_port())
        for service in ("auth", "posts", "realtime")
        for index in (1, 2)
    ]


def test_admission_bounds_follow_instances_and_the_services_bound(tls: TlsFiles) -> None:
    settings = Settings(max_in_flight=40, gateway_queue_per_instance=10)
    local = render(settings, tls)  # three instances of each service
    breakers = cluster(local, "posts")["circuit_breakers"]["thresholds"][0]
    assert breakers["max_connections"] == 3 * 40
    assert breakers["max_pending_requests"] == 3 * 10
    assert breakers["max_requests"] == 3 * 50
    dns = yaml.safe_load(
        render_config(
            Settings(max_in_flight=40, gateway_queue_per_instance=10,
                     gateway_instances_per_service=5),
            container_topology(),
            tls,
        )
    )  # fmt: skip
    assert cluster(dns, "auth")["circuit_breakers"]["thresholds"][0]["max_connections"] == 200
    # The sockets' cluster keeps its own budget.
    ws = cluster(local, "realtime_ws")["circuit_breakers"]["thresholds"][0]
    assert ws["max_connections"] == settings.gateway_max_websockets
    mappers = local["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["local_reply_config"]["mappers"]  # fmt: skip
    assert mappers[0]["filter"] == {"response_flag_filter": {"flags": ["UO"]}}
    assert mappers[0]["body_format_override"]["json_format"]["error"]["code"] == "overloaded"


@pytest.mark.parametrize("field", ["gateway_queue_per_instance", "gateway_instances_per_service"])
def test_admission_settings_refuse_zero(field: str) -> None:
    values: dict[str, Any] = {field: 0}
    with pytest.raises(ValidationError, match=field):
        Settings(**values)
