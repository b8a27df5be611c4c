"""The three Lua scripts of the cache: look up, store, invalidate — each one round trip.

A cache entry is a hash ``{p: payload, d: dependencies, t: load time in ms}``. Its
dependencies are *stamps*: one small key per thing that can change (a post, an author's list
of posts, a user's follows, a profile), holding the Redis-clock time in microseconds of its
last change. An entry is valid only while every stamp still holds the value it had when the
entry was stored, so one write invalidates every entry that depends on it by rewriting one key,
however many entries (feeds of 100,000 followers) depend on it.

Stores are guarded against the classic cache-aside race (a reader loads old rows, a writer
commits and invalidates, the reader stores the old rows): the reader passes the Redis time it
took *before* loading, and the store is skipped when any stamp is at least that recent — the
change may have committed after the load began. A missing stamp means "no change recorded" and
is created as ``1`` (older than any load): stamps outlive every entry (1 h against 10 min) and
a stamp written by a write is the most recently used key, the last an LRU eviction takes, so a
stamp does not vanish between a write and the store it must stop. (An entry stored with a
stamp that later disappears is invalid: its recorded value no longer matches.)

The scripts read stamp keys they do not declare in KEYS: fine on a standalone or Sentinel
Redis (what Agora supports), not on Redis Cluster.
"""

from __future__ import annotations

# KEYS[1] entry. Returns {hit, payload, pttl_ms, load_ms, now_us}.
LOOKUP = """
local t = redis.call('TIME')
local now = tostring(t[1]) .. string.format('%06d', tonumber(t[2]))
local e = redis.call('HMGET', KEYS[1], 'p', 'd', 't')
if not e[1] or not e[2] then return {0, '', 0, 0, now} end
for k, v in string.gmatch(e[2], '(%S+) (%S+)') do
  if redis.call('GET', k) ~= v then
    redis.call('DEL', KEYS[1])
    return {0, '', 0, 0, now}
  end
end
return {1, e[1], redis.call('PTTL', KEYS[1]), tonumber(e[3]) or 0, now}
"""

# KEYS[1] entry; ARGV: payload, ttl_ms, t0_us, load_ms, stamp_ttl_ms, stamp keys...
# Returns 1 when stored, 0 when skipped (a dependency changed during the load).
STORE = """
local t0 = ARGV[3]
local deps = {}
local fresh = true
for i = 6, #ARGV do
  local v = redis.call('GET', ARGV[i])
  if not v then
    v = '1'
    redis.call('SET', ARGV[i], v, 'PX', ARGV[5])
  end
  if #v > #t0 or (#v == #t0 and v >= t0) then
    fresh = false
  else
    deps[#deps + 1] = ARGV[i] .. ' ' .. v
  end
end
if not fresh then return 0 end
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'd', table.concat(deps, ' '), 't', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: stamps to move forward; ARGV[1] stamp_ttl_ms. Each becomes max(now, old + 1):
# strictly increasing per key, so an entry can never see "its" value come back.
BUMP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local old = tonumber(redis.call('GET', KEYS[i]) or '0')
  local v = now
  if old and old >= now then v = old + 1 end
  redis.call('SET', KEYS[i], string.format('%d', v), 'PX', ARGV[1])
end
return #KEYS
"""
