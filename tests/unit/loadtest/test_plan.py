"""How users are split over k6 processes, source addresses and gateways."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agora.loadtest.__main__ import app
from agora.loadtest.runner import local_ips, plan_shards
from agora.loadtest.scenarios import SCENARIOS


def test_every_user_in_exactly_one_process_with_its_own_addresses(tmp_path: Path) -> None:
    gateways = ["https://127.0.0.1:8443", "https://127.0.0.1:18443"]
    shards = plan_shards(10_000, SCENARIOS["stress"].processes, gateways, tmp_path)
    assert len(shards) == 4  # 10,000 users: 2,500 per process, under 20,000 descriptors
    covered = [u for s in shards for u in range(s.offset, s.offset + s.users)]
    assert covered == list(range(10_000))
    assert {s.gateway for s in shards} == set(gateways)
    assert local_ips(0, 2_500) == "127.20.0.1-127.20.9.196"
    assert local_ips(3, 300) == "127.23.0.1-127.23.1.44"


def test_smoke_and_load_need_one_process() -> None:
    assert SCENARIOS["smoke"].processes == SCENARIOS["load"].processes == 1


def test_an_unknown_scenario_is_refused_with_the_choices() -> None:

    result = CliRunner().invoke(app, ["spike"])
    assert result.exit_code == 2
    assert "unknown scenario 'spike': choose one of smoke, load, stress, soak" in result.output
