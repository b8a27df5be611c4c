from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agora import config
from agora.devstack import up
from agora.devstack.supervisor import Instance, Supervisor
from agora.devstack.up import plan_instances, pool_size_per_process
from agora.redis.client import parse_sentinel_url
from agora.resilience.remote import targets_from_state


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
        original = config.DEFAULT_PORTS["auth"]
        config.DEFAULT_PORTS["auth"] = port
        try:
            with pytest.raises(RuntimeError, match=f"port {port} for auth is already in use"):
                plan_instances(1)
        finally:
            config.DEFAULT_PORTS["auth"] = original


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


@pytest.mark.parametrize("replicas", [1, 3, 10])
def test_every_process_gets_pool_bounds_that_fit(replicas: int) -> None:
    env = up.pool_env({}, replicas)
    max_size, min_size = int(env["AGORA_DB_POOL_MAX_SIZE"]), int(env["AGORA_DB_POOL_MIN_SIZE"])
    assert min_size <= max_size
    assert max_size * 3 * replicas <= up.DB_CONNECTION_BUDGET
    if replicas == 3:
        assert (max_size, min_size) == (10, 10)


def test_operator_pool_bounds_win_and_the_minimum_follows_a_small_maximum() -> None:
    assert up.pool_env({"AGORA_DB_POOL_MAX_SIZE": "4"}, 1) == {
        "AGORA_DB_POOL_MAX_SIZE": "4",
        "AGORA_DB_POOL_MIN_SIZE": "4",
    }


def test_state_file_lists_every_instance_for_the_breakers_command(tmp_path: Path) -> None:

    instances = [Instance("auth", 1, 8080), Instance("posts", 2, 8083)]
    up.write_state(tmp_path, instances)
    assert targets_from_state(tmp_path) == ["http://127.0.0.1:8080", "http://127.0.0.1:8083"]
    with pytest.raises(LookupError, match="agora up"):
        targets_from_state(tmp_path / "elsewhere")


def test_a_port_base_moves_the_whole_stack_off_the_contract_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(up, "port_is_free", lambda _port: True)
    instances = plan_instances(2, port_base=18080)
    ports = {(i.service, i.index): i.port for i in instances}
    assert (ports[("auth", 1)], ports[("posts", 1)], ports[("realtime", 1)]) == (
        18080,
        18081,
        18082,
    )
    assert sorted(i.port for i in instances if i.index > 1) == [18083, 18084, 18085]


@pytest.mark.parametrize(
    ("cores", "configured", "expected"), [(2, "", "1"), (8, "", "2"), (2, "4", "4")]
)
def test_auth_instances_on_one_host_share_its_cores_for_hashing(
    monkeypatch: pytest.MonkeyPatch, cores: int, configured: str, expected: str
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(cores)))
    instances = [Instance("auth", i, 28080 + i) for i in (1, 2, 3)]
    instances.append(Instance("posts", 1, 28090))
    env = {"AGORA_PASSWORD_HASH_CONCURRENCY": configured} if configured else {}
    supervisor = Supervisor(env=env, instances=instances)
    assert supervisor.instance_env(instances[0])["AGORA_PASSWORD_HASH_CONCURRENCY"] == expected
    posts = supervisor.instance_env(instances[3])
    assert posts.get("AGORA_PASSWORD_HASH_CONCURRENCY", "") == configured  # only auth hashes
