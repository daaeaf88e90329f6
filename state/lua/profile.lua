-- Profile library for the Redis store: mirrors state/profile_hash.py rule for rule.
-- Prepended to the scripts that use it. Keys: P .. 'prof:' .. id (hash),
-- P .. 'prof:' .. id .. ':recent' (sorted set), P .. 'prof:pending' (sorted set).

local COUNTERS = {v = true, count = true, ltv_c = true, orders = true}
local LAST_FIELDS = {'last_ms', 'last_event', 'last_channel', 'last_touchpoint'}

local function set_latest(key, name, st, values)
  local current = redis.call('HGET', key, name .. '@')
  if (not current) or st > current then
    redis.call('HSET', key, name .. '@', st, unpack(values))
  end
end

-- Apply one delta (see ProfileDelta.to_wire) to customer cid; return true when due.
local function apply_delta(P, cid, d, interval_ms, recent_limit)
  local key = P .. 'prof:' .. cid
  local ms = tonumber(d.ms)
  redis.call('HINCRBY', key, 'v', 1)
  redis.call('HINCRBY', key, 'count', 1)
  redis.call('HINCRBY', key, 'n:' .. d.ch, 1)
  redis.call('HINCRBY', key, 'ltv_c', d.amt)
  redis.call('HINCRBY', key, 'orders', d.ord)
  local first = redis.call('HGET', key, 'first')
  if (not first) or ms < tonumber(first) then
    redis.call('HSET', key, 'first', d.ms)
  end
  set_latest(key, 'last', d.s,
    {'last_ms', d.ms, 'last_event', d.e, 'last_channel', d.ch, 'last_touchpoint', d.tp})
  for _, name in ipairs({'nps', 'csat', 'sent', 'stage'}) do
    if d[name] ~= nil then set_latest(key, name, d.s, {name, d[name]}) end
  end
  if d.consent ~= nil then
    for purpose, granted in pairs(d.consent) do
      set_latest(key, 'consent:' .. purpose, d.s, {'consent:' .. purpose, granted})
    end
  end
  if d.case ~= nil then
    set_latest(key, 'case:' .. d.case[1], d.s, {'case:' .. d.case[1], d.case[2]})
  end
  if d.latest ~= nil then
    for name, value in pairs(d.latest) do set_latest(key, name, d.s, {name, value}) end
  end
  if recent_limit > 0 then
    redis.call('ZADD', key .. ':recent', ms, d.r)
    redis.call('ZREMRANGEBYRANK', key .. ':recent', 0, -(recent_limit + 1))
  end
  local emit = redis.call('HGET', key, 'emit')
  if (not emit) or ms - tonumber(emit) >= interval_ms then
    redis.call('HSET', key, 'emit', d.ms)
    redis.call('ZREM', P .. 'prof:pending', cid)
    return true
  end
  redis.call('ZADD', P .. 'prof:pending', 'NX', ms, cid)
  return false
end

local function drop_profile(P, cid)
  redis.call('DEL', P .. 'prof:' .. cid, P .. 'prof:' .. cid .. ':recent')
  redis.call('ZREM', P .. 'prof:pending', cid)
end

-- Fold the profile of src into dst and delete src's: counters add, latest stamp wins.
local function fold_profile(P, src, dst, recent_limit)
  local skey, dkey = P .. 'prof:' .. src, P .. 'prof:' .. dst
  local flat = redis.call('HGETALL', skey)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  for name, value in pairs(h) do
    if COUNTERS[name] or string.sub(name, 1, 2) == 'n:' then
      redis.call('HINCRBY', dkey, name, value)
    elseif name == 'first' then
      local first = redis.call('HGET', dkey, 'first')
      if (not first) or tonumber(value) < tonumber(first) then
        redis.call('HSET', dkey, 'first', value)
      end
    end
  end
  for name, st in pairs(h) do
    if string.sub(name, -1) == '@' then
      local group = string.sub(name, 1, -2)
      local values = {}
      local members = (group == 'last') and LAST_FIELDS or {group}
      for _, m in ipairs(members) do
        if h[m] ~= nil then
          values[#values + 1] = m
          values[#values + 1] = h[m]
        end
      end
      set_latest(dkey, group, st, values)
    end
  end
  if redis.call('EXISTS', skey .. ':recent') == 1 then
    redis.call('ZUNIONSTORE', dkey .. ':recent', 2, dkey .. ':recent', skey .. ':recent',
      'AGGREGATE', 'MAX')
    redis.call('ZREMRANGEBYRANK', dkey .. ':recent', 0, -(recent_limit + 1))
  end
  local pending = redis.call('ZSCORE', P .. 'prof:pending', src)
  if pending then
    redis.call('ZADD', P .. 'prof:pending', 'LT', pending, dst)
  end
  drop_profile(P, src)
end
