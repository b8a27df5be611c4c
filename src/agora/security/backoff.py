"""Per-identifier login backoff: after repeated wrong passwords for one login name, it waits.

The per-IP limits (``agora.ratelimit``) stop one address guessing many passwords; they do not
stop a botnet spreading guesses for one account over many addresses. This does: from the
``threshold``-th consecutive attempt on, the identifier is locked for ``2^(n - threshold)``
seconds (1, 2, 4, ... capped at ``max_s``), whoever asks, right password or not. A success
resets it; attempts are forgotten ``max_s`` after the last one.

**Checked and counted in one step.** ``admit`` is one Lua script: refuse while locked, else
count this attempt and, when it reaches the threshold, set the lock at once, before the
password is even checked. A concurrent burst of guesses therefore gets at most ``threshold``
password checks: the others find the lock (checking first and counting after the slow
argon2 verify let a whole burst through). A success undoes the count (``succeeded``).

**Keyed by what was typed, under a keyed hash.** The key is an HMAC (server secret) of the
normalized identifier, so Redis holds neither names nor e-mails, and a dump cannot be
matched against a list of candidate addresses. The identifier is the login as typed
(lower-cased), not the account: keyed by account, locking ``alice`` made ``alice@…`` answer
429, an oracle that told which e-mail belongs to which username. The price is that an
account with a name and an e-mail gets two budgets (at most twice the guesses).

The cost of the lock-out being triggered by someone else (an attacker can delay a victim's
login) is bounded by ``max_s``; it never locks for good. Redis failures fail open
(``login_backoff`` in ``agora.redis.uses``): a Redis outage must not stop every login (the
per-address limit and the argon2 cost still bound guessing).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Literal

from redis.asyncio import Redis

from agora.redis import keys, uses
from agora.redis.access import RedisAccess

Purpose = Literal["login", "reauth"]
"""``login``: the name or e-mail a login gave; ``reauth``: an account id whose password is asked
again (account deletion). Separate, so no login string can lock an account's re-auth."""

# KEYS[1]: the attempt count; KEYS[2]: the lock. ARGV: threshold, max_s.
# Returns 0 when admitted (this attempt is counted), else the lock's remaining milliseconds.
ADMIT_SCRIPT = """
local locked = redis.call('PTTL', KEYS[2])
if locked > 0 then return locked end
local threshold = tonumber(ARGV[1])
local max_s = tonumber(ARGV[2])
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], max_s)
local over = n - threshold
if over >= 0 then
  local lock_s = 2 ^ math.min(over, 30)
  if lock_s > max_s then lock_s = max_s end
  redis.call('SET', KEYS[2], '1', 'EX', lock_s)
end
return 0
"""

# A constant, so instances without a key-encryption key (development) still agree; production
# always has one (the settings refuse to start without it) and derives the secret from it.
_DEVELOPMENT_SECRET = b"agora development login backoff"


def backoff_secret(key_encryption_key: str | None) -> bytes:
    """The HMAC secret: derived from the current key-encryption key (never the key itself)."""
    if not key_encryption_key:
        return _DEVELOPMENT_SECRET
    return hmac.new(key_encryption_key.encode(), b"agora login backoff", hashlib.sha256).digest()


class LoginBackoff:
    def __init__(self, access: RedisAccess, *, threshold: int, max_s: int, secret: bytes) -> None:
        self._access = access
        self._threshold = threshold
        self._max_s = max_s
        self._secret = secret
        self._admit = access.script(ADMIT_SCRIPT)

    def keys_for(self, purpose: Purpose, identifier: str) -> tuple[str, str]:
        normalized = f"{purpose}\0{identifier.strip().lower()}"
        digest = hmac.new(self._secret, normalized.encode(), hashlib.sha256).hexdigest()[:32]
        return keys.login_backoff(digest)

    async def admit(self, purpose: Purpose, identifier: str) -> int:
        """0 when this attempt may check a password (it is counted now); otherwise the
        seconds until ``identifier`` may try again."""
        fails, lock = self.keys_for(purpose, identifier)
        args = [self._threshold, self._max_s]

        async def run(client: Redis) -> int:
            reply = await self._admit(keys=[fails, lock], args=args, client=client)
            return int(reply)

        remaining_ms = await self._access.attempt(uses.LOGIN_BACKOFF, run, otherwise=0)
        return math.ceil(remaining_ms / 1000) if remaining_ms > 0 else 0

    async def succeeded(self, purpose: Purpose, identifier: str) -> None:
        fails, lock = self.keys_for(purpose, identifier)
        await self._access.attempt(uses.LOGIN_BACKOFF, lambda r: r.delete(fails, lock), otherwise=0)
