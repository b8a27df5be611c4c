"""The seeded follow graph: a few celebrities followed by thousands, nothing invalid."""

from __future__ import annotations

import random
import uuid
from collections import Counter

from agora.devstack.seed import follow_graph


def test_celebrities_are_followed_by_a_third_and_the_graph_is_valid() -> None:
    users = [uuid.uuid4() for _ in range(9_000)]
    pairs = follow_graph(users, 10, 3, random.Random(7))
    assert len(pairs) == len(set(pairs))
    assert all(follower != followee for follower, followee in pairs)
    followers = Counter(followee for _, followee in pairs)
    assert all(followers[celebrity] >= 3_000 for celebrity in users[:3])
    assert max(followers[u] for u in users[3:]) < 100
    per_user = Counter(follower for follower, _ in pairs)
    assert min(per_user.values()) == 10


def test_small_graphs_do_not_ask_for_more_followees_than_exist() -> None:
    users = [uuid.uuid4() for _ in range(3)]
    pairs = follow_graph(users, 10, 1, random.Random(1))
    assert len(pairs) == len(set(pairs)) == 6  # everyone follows both others
