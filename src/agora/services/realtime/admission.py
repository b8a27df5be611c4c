"""The per-user cap on open WebSockets, across every realtime instance (docs/security.md,
*Connection exhaustion*).

The count is the user's presence hash (``agora.services.realtime.presence``): one field per
open socket, on any instance, refreshed by its heartbeat. Admission is one script that counts
the unexpired fields and adds the new socket's field only while under the cap, so two
handshakes racing on two instances cannot both take the last slot. A crashed instance's
fields stop counting once they expire (``AGORA_PRESENCE_TTL_S``); a socket that closes frees
its slot at once (its field is deleted on close).

Without Redis (``socket_admission`` falls back) each instance applies the same cap to its own
sockets: a user may then hold the cap once per instance, which still bounds what a few
accounts can take, and no one is locked out because Redis is away.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from agora.observability.logging import get_logger
from agora.observability.metrics import RATELIMIT_REJECTIONS
from agora.redis import keys, uses
from agora.redis.access import RedisAccess, RedisUnavailable
from agora.services.realtime.presence import Presence

log = get_logger(__name__)

_REFUSED = RATELIMIT_REJECTIONS.labels("ws_sockets_per_user")

# KEYS[1]: the presence hash. ARGV: now, the new field, its expiry, the cap, the key's TTL.
# Expired fields (a crashed instance's) are deleted on the way: they no longer count.
_ADMIT = """
local now = tonumber(ARGV[1])
local entries = redis.call('HGETALL', KEYS[1])
local live = 0
for i = 1, #entries, 2 do
  local expires_at = tonumber(entries[i + 1])
  if expires_at and expires_at > now then
    live = live + 1
  else
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
if live >= tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return 1
"""


class SocketAdmission:
    def __init__(self, access: RedisAccess, presence: Presence, *, cap: int, ttl_s: int) -> None:
        self._access = access
        self._presence = presence
        self._cap = cap
        self._ttl_s = ttl_s
        self._script = access.script(_ADMIT)
        # This instance's admitted sockets per user: the fallback's count, kept on both paths
        # so a Redis outage starts from the truth.
        self._local: dict[str, set[str]] = {}

    @property
    def cap(self) -> int:
        return self._cap

    def held_here(self, user_id: str) -> int:
        """The user's sockets admitted on this instance and not yet released."""
        return len(self._local.get(user_id, ()))

    async def admit(self, user_id: str, connection_id: str) -> bool:
        """Whether the user may open one more socket; if so its slot is taken (release it
        with :meth:`release`). Refusals are counted in ``agora_ratelimit_rejections_total``
        ``{limit="ws_sockets_per_user"}``."""
        now = time.time()
        key, field = keys.presence(user_id), self._presence.field(connection_id)
        args: list[str | int | float] = [now, field, int(now) + self._ttl_s, self._cap, self._ttl_s]

        async def run(client: Redis) -> int:
            return int(await self._script(keys=[key], args=args, client=client))

        try:
            admitted = bool(await self._access.call(uses.SOCKET_ADMISSION, run))
        except RedisUnavailable as exc:
            self._access.warn(exc)
            # No await between the check and the add: concurrent handshakes here cannot both
            # take the last local slot.
            admitted = self.held_here(user_id) < self._cap
        if admitted:
            self._local.setdefault(user_id, set()).add(connection_id)
        else:
            _REFUSED.inc()
            log.info("websocket refused: too many sockets", user_id=user_id, cap=self._cap)
        return admitted

    def release(self, user_id: str, connection_id: str) -> None:
        """Forget a closed socket here. Its Redis slot is its presence field, which
        ``Presence.disconnected`` deletes as the socket closes."""
        sockets = self._local.get(user_id)
        if sockets is not None:
            sockets.discard(connection_id)
            if not sockets:
                del self._local[user_id]
