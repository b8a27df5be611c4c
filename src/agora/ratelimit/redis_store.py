"""GCRA on Redis: one Lua script, so the read-decide-write of a request is one atomic round
trip shared by every instance. The script is ``gcra.gcra_step`` in Lua (keep them in step).

Time comes from Redis (``TIME``), not from each instance, so instances with skewed clocks
still agree; tests pass an explicit ``now`` instead. The two keys of a client share a hash
tag, so the script also runs unchanged on a Redis Cluster.
"""

from __future__ import annotations

from redis.asyncio import Redis

from agora.ratelimit.gcra import Decision
from agora.ratelimit.rates import Rate

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

KEY_PREFIX = "agora:rl:"


class RedisStore:
    def __init__(self, redis: Redis, *, prefix: str = KEY_PREFIX) -> None:
        # register_script runs EVALSHA and loads the script again after a Redis restart or
        # failover (NOSCRIPT), so the script text crosses the wire only then.
        self._script = redis.register_script(GCRA_SCRIPT)
        self._prefix = prefix

    def keys(self, key: str) -> tuple[str, str]:
        tagged = f"{self._prefix}{{{key}}}"
        return tagged, f"{tagged}:strikes"

    async def hit(
        self, key: str, rate: Rate, *, strike_ttl_s: float, now_ms: float | None = None
    ) -> Decision:
        args: list[str | int | float] = [
            rate.limit,
            rate.period_s * 1000,
            max(1, int(strike_ttl_s * 1000)),
        ]
        if now_ms is not None:
            args.append(repr(now_ms))
        allowed, remaining, reset_ms, retry_ms, strikes = await self._script(
            keys=self.keys(key), args=args
        )
        return Decision(
            allowed=bool(allowed),
            limit=rate.limit,
            remaining=int(remaining),
            reset_s=float(reset_ms) / 1000.0,
            retry_after_s=float(retry_ms) / 1000.0,
            strikes=int(strikes),
        )
