from __future__ import annotations

import socket

import pytest

from agora.cache.client import parse_sentinel_url
from agora.devstack import up
from agora.devstack.up import plan_instances, pool_size_per_process


def test_first_instances_take_the_contract_ports_and_extras_follow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    busy = {8084}
    monkeypatch.setattr(up, "port_is_free", lambda port: port not in busy)
    instances = plan_instances(3)
    ports = {(i.service, i.index): i.port for i in instances}
    assert ports[("auth", 1)] == 8080
    assert ports[("posts", 1)] == 8081
    assert ports[("realtime", 1)] == 8082
    extra = sorted(i.port for i in instances if i.index > 1)
    assert extra == [8083, 8085, 8086, 8087, 8088, 8089]  # 8084 is taken by someone else
    assert len({i.port for i in instances}) == 9


def test_a_busy_contract_port_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        original = up.DEFAULT_PORTS["auth"]
        up.DEFAULT_PORTS["auth"] = port
        try:
            with pytest.raises(RuntimeError, match=f"port {port} for auth is already in use"):
                plan_instances(1)
        finally:
            up.DEFAULT_PORTS["auth"] = original


@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
def test_pools_of_all_processes_fit_a_default_postgres(replicas: int) -> None:
    total = pool_size_per_process(replicas) * 3 * replicas
    assert total <= 90  # max_connections 100 minus headroom for operators and migrations


def test_sentinel_url() -> None:
    target = parse_sentinel_url("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster/2")
    assert target.hosts == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    assert target.service_name == "mymaster"
    assert target.db == 2
    with pytest.raises(ValueError, match="service name"):
        parse_sentinel_url("redis+sentinel://10.0.0.1:26379")
