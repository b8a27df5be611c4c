"""GCRA on Redis: one Lua script, so the read-decide-write of a request is one atomic round
trip shared by every instance. The script is ``gcra.gcra_step`` in Lua (keep them in step).

Time comes from Redis (``TIME``), not from each instance, so instances with skewed clocks
still agree; tests pass an explicit ``now`` instead. The two keys of a client share a hash
tag, so the script also runs unchanged on a Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from agora.ratelimit.gcra import Decision
from agora.ratelimit.rates import Rate
from agora.redis import keys, uses
from agora.redis.access import RedisAccess
from agora.redis.batch import Command

# KEYS[1]: the client's TAT (ms, as text); KEYS[2]: its consecutive rejections.
# ARGV: limit, period_ms, strike_ttl_ms, [now_ms]. Returns allowed, remaining, reset_ms,
# retry_after_ms, strikes (durations as strings: Redis truncates Lua numbers to integers).
GCRA_SCRIPT = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local strike_ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now + 1e-6 < allow_at then
  local strikes = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], strike_ttl)
  return {0, 0, tostring(tat - now), tostring(allow_at - now), strikes}
end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil(new_tat - now))
local remaining = math.floor((now - allow_at) / interval + 1e-6)
if remaining > limit - 1 then remaining = limit - 1 end
return {1, remaining, tostring(new_tat - now), '0', 0}
"""


class RedisStore:
    """Every call is the ``rate_limit`` use of ``agora.redis`` (its timeout; no breaker: the
    limiter's fallback period plays that part) and raises ``RedisUnavailable``."""

    def __init__(self, access: RedisAccess) -> None:
        # register_script runs EVALSHA and loads the script again after a Redis restart or
        # failover (NOSCRIPT), so the script text crosses the wire only then.
        self._access = access
        self._script = access.script(GCRA_SCRIPT)

    @staticmethod
    def keys(key: str) -> tuple[str, str]:
        return keys.rate_limit(key)

    async def hit(
        self, key: str, rate: Rate, *, strike_ttl_s: float, now_ms: float | None = None
    ) -> Decision:
        args = _args(rate, strike_ttl_s, now_ms)

        async def run(client: Redis) -> list[Any]:
            reply: list[Any] = await self._script(keys=self.keys(key), args=args, client=client)
            return reply

        return _decision(rate, await self._access.call(uses.RATE_LIMIT, run))

    async def hit_and_check(
        self, key: str, rate: Rate, exists_key: str, *, strike_ttl_s: float
    ) -> tuple[Decision, bool]:
        """``hit`` and ``EXISTS exists_key`` in one round trip."""
        decision, exists, _ = await self.hit_check_and_look(
            key, rate, (exists_key,), None, strike_ttl_s=strike_ttl_s
        )
        return decision, exists[0]

    async def hit_check_and_look(
        self,
        key: str,
        rate: Rate,
        exists_keys: Sequence[str],
        lookup: tuple[str, str] | None,
        *,
        strike_ttl_s: float,
    ) -> tuple[Decision, tuple[bool, ...], list[Any] | None]:
        """``hit``, ``EXISTS`` of each of ``exists_keys`` and, with ``lookup`` = (script SHA,
        key), that script's reply, in one round trip: a pipeline rather than one script, because the
        other keys may live in other Cluster slots (docs/architecture.md). The script goes by
        its SHA (a pipeline of registered scripts would ask ``SCRIPT EXISTS`` first, a round
        trip of its own); after a Redis restart or failover (NOSCRIPT) it is loaded and the
        pipeline sent again — the script had not run, so nothing is counted twice. The
        lookup's reply is None when it failed: its owner asks again itself."""
        script_keys, args = self.keys(key), _args(rate, strike_ttl_s, None)

        commands = self._commands(script_keys, args, exists_keys, lookup)
        replies = await self._access.send_all(uses.RATE_LIMIT, commands)
        if isinstance(replies[0], NoScriptError):
            sha = await self._access.call(uses.RATE_LIMIT, lambda c: c.script_load(GCRA_SCRIPT))
            self._script.sha = sha
            commands = self._commands(script_keys, args, exists_keys, lookup)
            replies = await self._access.send_all(uses.RATE_LIMIT, commands)
        checked = 1 + len(exists_keys)
        for result in replies[:checked]:
            if isinstance(result, Exception):
                raise result
        looked = replies[checked] if lookup is not None else None
        return (
            _decision(rate, replies[0]),
            tuple(bool(exists) for exists in replies[1:checked]),
            None if isinstance(looked, Exception) else looked,
        )

    def _commands(
        self,
        script_keys: tuple[str, str],
        args: list[str | int | float],
        exists_keys: Sequence[str],
        lookup: tuple[str, str] | None,
    ) -> list[Command]:
        commands: list[Command] = [
            ("EVALSHA", self._script.sha, len(script_keys), *script_keys, *args),
            # one command each: they may live in other slots
            *(("EXISTS", exists_key) for exists_key in exists_keys),
        ]
        if lookup is not None:
            commands.append(("EVALSHA", lookup[0], 1, lookup[1]))
        return commands


def _args(rate: Rate, strike_ttl_s: float, now_ms: float | None) -> list[str | int | float]:
    args: list[str | int | float] = [
        rate.limit,
        rate.period_s * 1000,
        max(1, int(strike_ttl_s * 1000)),
    ]
    if now_ms is not None:
        args.append(repr(now_ms))
    return args


def _decision(rate: Rate, reply: list[Any]) -> Decision:
    allowed, remaining, reset_ms, retry_ms, strikes = reply
    return Decision(
        allowed=bool(allowed),
        limit=rate.limit,
        remaining=int(remaining),
        reset_s=float(reset_ms) / 1000.0,
        retry_after_s=float(retry_ms) / 1000.0,
        strikes=int(strikes),
    )
