-- The action board's write (state/redis_actions.py, RedisActionBoard.record): customers' NBAs,
-- alerts and timeline entries added, each bounded, every key's TTL renewed; nothing for a
-- customer erased from the board (its marker key exists). Several customers per call (one
-- call per batch on one server, per slot on a cluster: a call's keys share a slot there); the
-- caller sets the NBA pointers. Returns 1 (written) or 0 (erased) per customer.
-- KEYS: per customer: board hash, NBA index (zset), alert index (zset), timeline (list),
--       erased marker
-- ARGV: max NBAs, max alerts, timeline length, TTL seconds, then per customer m and its
--       m items (kind "n" / "a" / "t", id, time ms, JSON)
local maxn, maxa, tl, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function trim(hash, zkey, kind, max)
  local extra = redis.call('ZCARD', zkey) - max
  if extra > 0 then
    local gone = redis.call('ZPOPMIN', zkey, extra)
    for j = 1, #gone, 2 do
      redis.call('HDEL', hash, kind .. ':' .. gone[j], 'o:' .. gone[j])
    end
  end
end
local out, at = {}, 5
for c = 1, #KEYS / 5 do
  local k = 5 * (c - 1)
  local hash, nkey, akey, tkey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local last = at + 4 * tonumber(ARGV[at])
  if redis.call('EXISTS', KEYS[k + 5]) == 1 then
    out[c] = 0
  else
    for i = at + 1, last, 4 do
      local kind, id = ARGV[i], ARGV[i + 1]
      if kind == 't' then
        redis.call('RPUSH', tkey, ARGV[i + 3])
      else
        redis.call('HSET', hash, kind .. ':' .. id, ARGV[i + 3])
        redis.call('ZADD', kind == 'n' and nkey or akey, ARGV[i + 2], id)
      end
    end
    trim(hash, nkey, 'n', maxn)
    trim(hash, akey, 'a', maxa)
    redis.call('LTRIM', tkey, -tl, -1)
    for j = 1, 4 do redis.call('EXPIRE', KEYS[k + j], ttl) end
    out[c] = 1
  end
  at = last + 1
end
return out
