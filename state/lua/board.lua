-- The action board's write (state/actions.py, RedisActionBoard.record): one customer's
-- NBAs and alerts added, each kind trimmed to its newest N, every key's TTL renewed.
-- KEYS: board hash, NBA index (zset), alert index (zset)
-- ARGV: max NBAs, max alerts, TTL seconds, then (kind, id, time ms, JSON) per item
local maxn, maxa, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV, 4 do
  local kind, id = ARGV[i], ARGV[i + 1]
  redis.call('HSET', KEYS[1], kind .. ':' .. id, ARGV[i + 3])
  redis.call('ZADD', kind == 'n' and KEYS[2] or KEYS[3], ARGV[i + 2], id)
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
for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
