"""What each scenario needs from the harness: seed size, k6 processes and gateways.

The users' behaviour, rates and thresholds live in ``k6/`` (one library); this is only the
arrangement around them. Every k6 process and every gateway stays under this machine's cap of
20,000 open files per process: a WebSocket costs k6 one descriptor and a gateway two (client
and upstream), and each user also holds an HTTP connection or two.
"""

from __future__ import annotations

from dataclasses import dataclass

USERS_PER_PROCESS = 2_500  # k6: ~2 sockets per user; gateway: ~4 descriptors per user


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int
    duration: str  # the k6 script's own default (tests/unit/loadtest/test_plan.py keeps them equal)
    seed_users: int = 10_000
    seed_posts: int = 100_000
    seed_follows: int = 10
    seed_celebrities: int = 5
    # The share of users who come back with a remembered session (one refresh) rather than
    # their password: at 10,000 users, a cold sign-in of everyone is a login storm (about 35
    # core-minutes of Argon2id), a different scenario from 10,000 users online.
    returning: float = 0.0

    @property
    def processes(self) -> int:
        """k6 processes, and gateway processes (one per k6 process)."""
        return max(1, -(-self.users // USERS_PER_PROCESS))


SCENARIOS = {
    "smoke": Scenario("smoke", users=100, duration="1m"),
    "load": Scenario("load", users=1_000, duration="10m"),
    "stress": Scenario("stress", users=10_000, duration="20m", returning=0.9),
    "soak": Scenario("soak", users=1_000, duration="1h"),
}
