"""What the gateway forwards and how it answers, seen from an upstream that records requests:
TLS with HSTS and the HTTP redirect in production, client addresses, untrusted headers, and
the per-client and overall rate limits."""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from agora.config import DEFAULT_PORTS
from agora.gateway.certs import ensure_dev_certificate
from tests.conftest import free_port
from tests.gateway.conftest import (
    Gateway,
    Recorder,
    gateway_settings,
    recorder_ports,
    start_gateway,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def production_gateway(recorder: Recorder, tmp_path: Path) -> Iterator[Gateway]:
    tls = ensure_dev_certificate(tmp_path / "tls")
    https_port_settings = gateway_settings()
    settings = gateway_settings(
        env="production",
        trusted_proxies=["127.0.0.0/8", "::1/128"],
        key_encryption_key=Fernet.generate_key().decode(),
        gateway_http_port=https_port_settings.gateway_http_port,
        gateway_https_port=https_port_settings.gateway_https_port,
        gateway_public_https_port=https_port_settings.gateway_https_port,
        gateway_tls_cert_file=str(tls.cert_file),
        gateway_tls_key_file=str(tls.key_file),
        cors_origins=["https://app.example"],
    )
    gateway = start_gateway(settings, recorder_ports(recorder), tmp_path)
    yield gateway
    gateway.stop()


def https_client(gateway: Gateway, *, source: str = "127.0.0.1") -> httpx.Client:
    trust = ssl.create_default_context(cafile=str(gateway.cert_file))
    transport = httpx.HTTPTransport(verify=trust, local_address=source)
    return httpx.Client(base_url=gateway.https_url, transport=transport, timeout=10)


def test_production_serves_tls_with_hsts_and_redirects_http(
    production_gateway: Gateway, recorder: Recorder
) -> None:
    with https_client(production_gateway) as client:
        response = client.get("/api/v1/auth/users/someone")
    assert response.status_code == 200
    assert response.http_version in ("HTTP/1.1", "HTTP/2")
    hsts = response.headers["strict-transport-security"]
    assert "max-age=63072000" in hsts
    assert "includeSubDomains" in hsts
    assert recorder.seen[-1]["x-forwarded-proto"] == "https"

    plain = httpx.get(f"{production_gateway.url}/api/v1/auth/users/someone?x=1", timeout=10)
    assert plain.status_code == 301
    assert plain.headers["location"] == (
        f"https://127.0.0.1:{production_gateway.settings.gateway_https_port}"
        "/api/v1/auth/users/someone?x=1"
    )
    assert len(recorder.seen) == 1, "the plain-HTTP request must not reach a service"


def test_development_tls_listener_has_no_hsts(recorder: Recorder, tmp_path: Path) -> None:
    """HSTS on a development host would pin browsers to HTTPS for it; plain HTTP is served."""
    gateway = start_gateway(gateway_settings(), recorder_ports(recorder), tmp_path)
    try:
        with https_client(gateway) as client:
            secure = client.get("/api/v1/auth/x")
        assert secure.status_code == 200
        assert "strict-transport-security" not in secure.headers
        assert httpx.get(f"{gateway.url}/api/v1/auth/x", timeout=10).status_code == 200
    finally:
        gateway.stop()


def test_client_address_comes_from_the_connection_not_from_headers(
    production_gateway: Gateway, recorder: Recorder
) -> None:
    spoofed = {
        "X-Forwarded-For": "6.6.6.6, 7.7.7.7",
        "X-Real-IP": "6.6.6.6",
        "Forwarded": "for=6.6.6.6",
        "X-Forwarded-Proto": "http",
        "X-Envoy-Retry-On": "5xx",
        "X-Envoy-Internal": "true",
        "X-Agora-Internal-Token": "guessed-or-stolen-token",  # lifts the services' limits
    }
    with https_client(production_gateway, source="127.0.0.2") as client:
        response = client.get("/api/v1/auth/whoami", headers=spoofed)
    assert response.status_code == 200
    seen = recorder.seen[-1]
    assert seen["x-forwarded-for"] == "127.0.0.2"
    assert seen["x-forwarded-proto"] == "https"
    assert "x-real-ip" not in seen
    assert "forwarded" not in seen
    # Envoy's own record of the peer is the only x-envoy-* header left; the client's are gone.
    assert seen["x-envoy-external-address"] == "127.0.0.2"
    assert "x-envoy-retry-on" not in seen
    assert "x-envoy-internal" not in seen
    assert "x-agora-internal-token" not in seen
    entry = production_gateway.access_entry(response.headers["x-request-id"])
    assert entry["client.address"] == "127.0.0.2"


def test_behind_a_load_balancer_the_client_is_the_trusted_hop(
    recorder: Recorder, tmp_path: Path
) -> None:
    """With one trusted hop (a load balancer that appends its peer to X-Forwarded-For), the
    client is the right-most entry; what the client itself put further left is not believed."""
    gateway = start_gateway(
        gateway_settings(gateway_trusted_hops=1), recorder_ports(recorder), tmp_path
    )
    try:
        # The client forged 6.6.6.6; the load balancer appended the peer it saw, 203.0.113.7.
        forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
        response = httpx.get(f"{gateway.url}/api/v1/auth/whoami", headers=forwarded, timeout=10)
        assert response.status_code == 200
        assert recorder.seen[-1]["x-forwarded-for"] == "203.0.113.7"
        entry = gateway.access_entry(response.headers["x-request-id"])
        assert entry["client.address"] == "203.0.113.7"
    finally:
        gateway.stop()


def test_rate_limits_per_client_address_and_overall(recorder: Recorder, tmp_path: Path) -> None:
    """Buckets hold twice the per-second rate: 4 requests per client, 6 in all, at once."""
    settings = gateway_settings(gateway_client_rps=2, gateway_total_rps=3)
    gateway = start_gateway(settings, recorder_ports(recorder), tmp_path)

    def burst(source: str, count: int) -> list[httpx.Response]:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=gateway.url, transport=transport, timeout=10) as client:
            return [client.get("/api/v1/auth/x") for _ in range(count)]

    try:
        # The buckets refill continuously (2/s and 3/s): the bounds below hold when both
        # bursts take under 0.6 s, so a slower attempt is repeated once the buckets are full.
        for attempt in range(4):
            started = time.monotonic()
            first = burst(f"127.0.0.{2 + 2 * attempt}", 6)
            second = burst(f"127.0.0.{3 + 2 * attempt}", 4)
            if time.monotonic() - started < 0.6:
                break
            time.sleep(3)
    finally:
        gateway.stop()
    first_ok = sum(r.status_code == 200 for r in first)
    second_ok = sum(r.status_code == 200 for r in second)
    # The first client stops at its own bucket (4, or 5 with a token refilled meanwhile)
    # while the overall one still has tokens...
    assert first_ok in (4, 5), [r.status_code for r in first]
    # ...which a second address may use, but not beyond the overall ceiling (6 in all): its
    # own bucket would have allowed 4.
    assert 1 <= second_ok <= 3, [r.status_code for r in second]
    refused = first[-1]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["request_id"] == refused.headers["x-request-id"]


def test_traces_are_continued_and_exported_over_otlp(recorder: Recorder, tmp_path: Path) -> None:
    collector = Recorder()
    settings = gateway_settings(
        otlp_endpoint=f"http://127.0.0.1:{collector.port}", trace_sample_ratio=1.0
    )
    gateway = start_gateway(settings, recorder_ports(recorder), tmp_path)
    trace_id = secrets.token_hex(16)
    try:
        response = httpx.get(
            f"{gateway.url}/api/v1/auth/traced",
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
            timeout=10,
        )
        assert response.status_code == 200
        # The service continues the caller's trace, under the gateway's span.
        version, forwarded_trace, _, flags = recorder.seen[-1]["traceparent"].split("-")
        assert (version, forwarded_trace, flags) == ("00", trace_id, "01")
        assert gateway.access_entry(response.headers["x-request-id"])["trace.id"] == trace_id
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            exported = [body for path, body in collector.posted if path == "/v1/traces"]
            if any(bytes.fromhex(trace_id) in body for body in exported):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no span of {trace_id} exported: {collector.posted}")
    finally:
        gateway.stop()
        collector.close()


def test_no_instance_to_send_to_is_a_503_with_the_error_contract(tmp_path: Path) -> None:
    nowhere = free_port()  # nothing listens there
    ports = {name: [nowhere] for name in DEFAULT_PORTS}
    gateway = start_gateway(gateway_settings(), ports, tmp_path)
    try:
        response = httpx.get(f"{gateway.url}/api/v1/auth/users/x", timeout=10)
    finally:
        gateway.stop()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert error["request_id"] == response.headers["x-request-id"]
    assert "upstream" not in error["message"]  # no proxy internals in the reply
