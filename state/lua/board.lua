-- The action board's write (state/redis_actions.py, RedisActionBoard.record): one customer's
-- NBAs, alerts and timeline entries added, each bounded, every key's TTL renewed; nothing for
-- a customer erased from the board (its marker key exists): returns 0 then, else 1.
-- Only the customer's own keys (one slot on a cluster); the caller sets the NBA pointers.
-- KEYS: board hash, NBA index (zset), alert index (zset), timeline (list), erased marker
-- ARGV: max NBAs, max alerts, timeline length, TTL seconds,
--       then (kind "n" / "a" / "t", id, time ms, JSON) per item
if redis.call('EXISTS', KEYS[5]) == 1 then return 0 end
local maxn, maxa, tl, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 5, #ARGV, 4 do
  local kind, id = ARGV[i], ARGV[i + 1]
  if kind == 't' then
    redis.call('RPUSH', KEYS[4], ARGV[i + 3])
  else
    redis.call('HSET', KEYS[1], kind .. ':' .. id, ARGV[i + 3])
    redis.call('ZADD', kind == 'n' and KEYS[2] or KEYS[3], ARGV[i + 2], id)
  end
end
local function trim(zkey, kind, max)
  local extra = redis.call('ZCARD', zkey) - max
  if extra > 0 then
    local gone = redis.call('ZPOPMIN', zkey, extra)
    for j = 1, #gone, 2 do
      redis.call('HDEL', KEYS[1], kind .. ':' .. gone[j], 'o:' .. gone[j])
    end
  end
end
trim(KEYS[2], 'n', maxn)
trim(KEYS[3], 'a', maxa)
redis.call('LTRIM', KEYS[4], -tl, -1)
for k = 1, 4 do redis.call('EXPIRE', KEYS[k], ttl) end
return 1
