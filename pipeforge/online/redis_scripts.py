"""The Lua scripts of the Redis online store: each atomic step is one script.

Redis runs a script alone, so what a script reads and writes is consistent.
Every script takes the key prefix as its first argument and builds its keys
from it; the prefix's braces (``pipeforge:{online}:``) keep all keys in one
Redis Cluster slot. See :mod:`pipeforge.online.redis_store` for what each
step is for.
"""

from __future__ import annotations

__all__ = ["SCRIPTS"]

# Lua helpers shared by the scripts: HMGET in slices (Lua's unpack has a limit).
_HMGET_RANGE = """
local function hmget_range(key, first, last, out)
  local v = first
  while v <= last do
    local upto = math.min(last, v + 999)
    local fields = {}
    for i = v, upto do fields[#fields + 1] = i end
    local got = redis.call('HMGET', key, unpack(fields))
    for i = 1, #got do
      if not got[i] then return false end
      out[#out + 1] = got[i]
    end
    v = upto + 1
  end
  return true
end
"""

_LOOKUP = """
local P, name = ARGV[1], ARGV[2]
if name == '' then
  name = redis.call('HGET', P .. 'meta', 'default')
  if not name then return false end
end
local m = redis.call('HMGET', P .. 'model:' .. name, 'uid', 'flavor', 'version', 'snapshot_version')
if not m[1] then return false end
return {name, m[1], m[2], m[3], m[4], redis.call('EXISTS', P .. 'listeners')}
"""

_CATCH_UP = (
    _HMGET_RANGE
    + """
local P, name, have_uid, have = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local m = redis.call('HMGET', P .. 'model:' .. name, 'uid', 'version')
if not m[1] then return false end
local uid, version = m[1], tonumber(m[2])
local out = {uid, version, false, 0}
if uid == have_uid and have <= version and version - have <= 5000 then
  if hmget_range(P .. 'log:' .. uid, have + 1, version, out) then return out end
end
local s = redis.call('HMGET', P .. 'snap:' .. uid, 'version', 'data')
if not s[1] then return {'no-snapshot'} end
out = {uid, version, s[2], tonumber(s[1])}
if not hmget_range(P .. 'log:' .. uid, tonumber(s[1]) + 1, version, out) then return {'lost-log'} end
return out
"""
)

_DELTAS = (
    _HMGET_RANGE
    + """
local P, name = ARGV[1], ARGV[2]
local m = redis.call('HMGET', P .. 'model:' .. name, 'uid', 'version', 'snapshot_version', 'metrics')
if not m[1] then return false end
local out = {m[4]}
if not hmget_range(P .. 'log:' .. m[1], tonumber(m[3]) + 1, tonumber(m[2]), out) then return {'lost-log'} end
return out
"""
)

_BEGIN = """
local P, pending_id, name, token, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local pending = false
if pending_id ~= '' then
  pending = redis.call('HMGET', P .. 'pending:' .. pending_id, 'model', 'features', 'prediction')
  if not pending[1] then return {'unknown-id'} end
  name = pending[1]
end
if name == '' then
  name = redis.call('HGET', P .. 'meta', 'default')
  if not name then return {'unknown-model', ''} end
end
local key = P .. 'model:' .. name
if redis.call('EXISTS', key) == 0 then return {'unknown-model', name} end
if not redis.call('SET', P .. 'lock:' .. name, token, 'NX', 'PX', ttl) then return {'busy', name} end
local m = redis.call('HMGET', key, 'uid', 'flavor', 'version', 'snapshot_version', 'n_learnt', 'source', 'created', 'metrics')
local result = {'ok', name, redis.call('EXISTS', P .. 'listeners')}
for i = 1, #m do result[#result + 1] = m[i] end
if pending then
  result[#result + 1] = pending[2]
  result[#result + 1] = pending[3]
end
return result
"""

_COMMIT = """
local P, name, token, uid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expected, pending_id, learnt = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local snapshot, metrics, keep = ARGV[8], ARGV[9], tonumber(ARGV[10])
local lock, key, log = P .. 'lock:' .. name, P .. 'model:' .. name, P .. 'log:' .. uid
if redis.call('GET', lock) ~= token then return 'lost-lock' end
local m = redis.call('HMGET', key, 'uid', 'version')
if m[1] ~= uid or tonumber(m[2]) ~= expected then redis.call('DEL', lock) return 'conflict' end
if pending_id ~= '' and redis.call('DEL', P .. 'pending:' .. pending_id) == 0 then
  redis.call('DEL', lock)
  return 'gone'
end
local i = 11
local n_entries = tonumber(ARGV[i]); i = i + 1
for e = 1, n_entries do
  redis.call('HSET', log, expected + e, ARGV[i]); i = i + 1
end
local version = expected + learnt
redis.call('HSET', key, 'version', version)
redis.call('HINCRBY', key, 'n_learnt', learnt)
if snapshot ~= '' then
  redis.call('HSET', P .. 'snap:' .. uid, 'version', version, 'data', snapshot)
  redis.call('HSET', key, 'snapshot_version', version, 'metrics', metrics)
  for _, field in ipairs(redis.call('HKEYS', log)) do
    if tonumber(field) <= version - keep then redis.call('HDEL', log, field) end
  end
end
local n_events = tonumber(ARGV[i]); i = i + 1
for e = 1, n_events do
  redis.call('XADD', P .. 'events', 'MAXLEN', '~', ARGV[i + 2], '*', 'kind', ARGV[i], 'data', ARGV[i + 1])
  i = i + 3
end
redis.call('DEL', lock)
return 'ok'
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_PUT = """
local P, name, uid, flavor, blob, source, created, metrics, make_default = unpack(ARGV)
local key = P .. 'model:' .. name
local old = redis.call('HGET', key, 'uid')
if old then redis.call('DEL', P .. 'log:' .. old, P .. 'snap:' .. old) end
redis.call('DEL', key)
redis.call('HSET', key, 'uid', uid, 'flavor', flavor, 'version', 0, 'snapshot_version', 0,
  'n_learnt', 0, 'source', source, 'created', created, 'metrics', metrics)
redis.call('HSET', P .. 'snap:' .. uid, 'version', 0, 'data', blob)
redis.call('ZADD', P .. 'names', created, name)
if make_default == '1' then redis.call('HSET', P .. 'meta', 'default', name) end
return 1
"""

_SEED = """
local P, name, uid, flavor, blob, created, metrics, is_default = unpack(ARGV)
if redis.call('HSETNX', P .. 'meta', 'seeded:' .. name, '1') == 0 then return 0 end
local key = P .. 'model:' .. name
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'uid', uid, 'flavor', flavor, 'version', 0, 'snapshot_version', 0,
    'n_learnt', 0, 'source', 'config', 'created', created, 'metrics', metrics)
  redis.call('HSET', P .. 'snap:' .. uid, 'version', 0, 'data', blob)
  redis.call('ZADD', P .. 'names', created, name)
end
if is_default == '1' then redis.call('HSETNX', P .. 'meta', 'default', name) end
return 1
"""

_DELETE = """
local P, name = ARGV[1], ARGV[2]
local key = P .. 'model:' .. name
local uid = redis.call('HGET', key, 'uid')
if not uid then return 0 end
redis.call('DEL', key, P .. 'log:' .. uid, P .. 'snap:' .. uid)
redis.call('ZREM', P .. 'names', name)
if redis.call('HGET', P .. 'meta', 'default') == name then redis.call('HDEL', P .. 'meta', 'default') end
return 1
"""


_KEEP = """
local P, id, ttl = ARGV[1], ARGV[2], tonumber(ARGV[6])
local key = P .. 'pending:' .. id
redis.call('HSET', key, 'model', ARGV[3], 'features', ARGV[4], 'prediction', ARGV[5])
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
return 1
"""

SCRIPTS = {
    "lookup": _LOOKUP,
    "keep": _KEEP,
    "catch_up": _CATCH_UP,
    "deltas": _DELTAS,
    "begin": _BEGIN,
    "commit": _COMMIT,
    "release": _RELEASE,
    "put": _PUT,
    "seed": _SEED,
    "delete": _DELETE,
}
