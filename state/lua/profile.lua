-- Profile library for the Redis store: mirrors state/profile_hash.py rule for rule.
-- Prepended to the scripts that use it. Keys: P .. 'prof:' .. id (hash),
-- P .. 'prof:' .. id .. ':recent' (sorted set of entries by event time),
-- P .. 'prof:' .. id .. ':applied' (sorted set of applied event ids by event time),
-- P .. 'prof:pending' (sorted set of customers with unpublished changes),
-- P .. 'marks:<bucket>' (hashes: applied event id -> '<wall ms>|<customer it was
-- applied to>', kept for the retention: state/profile_hash.py; see "Wall-clock logs"),
-- P .. 'marks:at' (the newest bucket), P .. 'erased' (sorted set: customer ids erased
-- within the retention, by wall-clock ms).
--
-- A batch is folded per customer: one HGETALL, the deltas applied to a Lua table,
-- one HSET of the fields that changed (and one ZADD per sorted set), instead of a
-- dozen commands per delta; the pending set is changed with at most three commands
-- per batch. Customers never share
-- a field, so the result is the one of applying the deltas one by one in batch order.

local COUNTERS = {v = true, count = true, ltv_c = true, orders = true}
local LAST_FIELDS = {'last_ms', 'last_event', 'last_channel', 'last_touchpoint'}
-- unpack() is bounded by the Lua C stack (8000 slots): long argument lists go in chunks
local CHUNK = 1000

-- Integers as Redis and Python write them (tostring would switch to 1e+14).
local function int(n) return string.format('%d', n) end

-- redis.call(command, [key,] [fixed,] items...) with items in chunks of `step`-sized runs
local function call_chunked(command, key, fixed, items, step)
  local size = CHUNK * step
  for i = 1, #items, size do
    local j = math.min(i + size - 1, #items)
    if fixed then
      redis.call(command, key, fixed, unpack(items, i, j))
    elseif key then
      redis.call(command, key, unpack(items, i, j))
    else  -- a command of keys and values (MSET)
      redis.call(command, unpack(items, i, j))
    end
  end
end

-- Wall-clock ms: the caller's clock when it sends one (tests), else the server's TIME.
-- TIME is allowed in a script that writes: Redis 7 replicates a script's effects.
local function wall_ms(given)
  if given and given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Records older than the retention horizon are deleted this many at most per call:
-- a constant plus twice the records the call made (state/outcomes.py prune_budget).
local PRUNE_MIN = 128
local function prune_budget(recorded) return PRUNE_MIN + 2 * recorded end

-- Delete up to `budget` members of `zset` (and their fields of `hash`, if any) scored
-- below `horizon`, oldest first (state/outcomes.py RecentLog.prune).
local function prune_log(hash, zset, horizon, budget)
  local old = redis.call('ZRANGEBYSCORE', zset, '-inf', '(' .. int(horizon),
                         'LIMIT', 0, budget)
  if #old > 0 then
    if hash then call_chunked('HDEL', hash, nil, old, 1) end
    call_chunked('ZREM', zset, nil, old, 1)
  end
end

-- HSET the fields of hash table `h` named in the set `dirty` (nothing when none changed).
local function write_dirty(key, h, dirty)
  local fields = {}
  for name in pairs(dirty) do
    fields[#fields + 1] = name
    fields[#fields + 1] = h[name]
  end
  if #fields > 0 then call_chunked('HSET', key, nil, fields, 2) end
end

-- Byte order, as Python compares str (Lua's < follows the server's collation locale):
-- both stores must sort alike. identity.lua, loaded after this library, uses it too.
local function byte_order_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The 'optout' field of profile h (state/profile_hash.py withdrawn_field):
-- "<purpose>=<ms>" per withdrawn consent purpose, sorted, one a line. Per purpose the
-- latest by stamp of the profile step's 'consent:' and resolve's 'rconsent:' wins (a
-- tie withdraws if either does).
local function withdrawn(h)
  local latest, purposes = {}, {}
  for name, value in pairs(h) do
    if string.sub(name, -1) ~= '@' then
      local purpose = nil
      if string.sub(name, 1, 8) == 'consent:' then
        purpose = string.sub(name, 9)
      elseif string.sub(name, 1, 9) == 'rconsent:' then
        purpose = string.sub(name, 10)
      end
      if purpose then
        local at = h[name .. '@'] or ''
        local known = latest[purpose]
        if not known then purposes[#purposes + 1] = purpose end
        if (not known) or byte_order_less(known[1], at)
            or (at == known[1] and value == '0') then
          latest[purpose] = {at, value}
        end
      end
    end
  end
  table.sort(purposes, byte_order_less)
  local lines = {}
  for _, p in ipairs(purposes) do
    local at, value = latest[p][1], latest[p][2]
    if value == '0' then
      lines[#lines + 1] = p .. '=' .. int(tonumber(string.sub(at, 1, 15)) or 0)
    end
  end
  return table.concat(lines, '\n')
end

local function read_hash(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- A batch arrives as plain arguments, one run per delta (ProfileDelta.to_args):
--   customer, event id, stamp, ms, channel, touchpoint, amount (cents), order (0/1),
--   recent entry, n, then n name/value pairs of single-field latest-wins groups.
-- No cjson document: decoding one cost more than applying it, as for resolve.
-- Deltas are referred to by the position of their first argument.
local D_EVENT, D_STAMP, D_MS, D_CHANNEL, D_TOUCHPOINT = 1, 2, 3, 4, 5
local D_AMOUNT, D_ORDER, D_RECENT, D_N, D_PAIRS = 6, 7, 8, 9, 10

-- Each delta's end and event time, by its position, read once by check_deltas: a
-- tonumber() (two strtod calls) per use was a tenth of the script's time.
local DELTA_END, DELTA_MS = {}, {}

local function delta_end(at)
  local e = DELTA_END[at]
  if not e then
    e = at + D_PAIRS + 2 * tonumber(ARGV[at + D_N])
    DELTA_END[at] = e
  end
  return e
end

-- nil when the deltas from `first` on are well formed, else what is wrong: checked
-- before the first write, since Redis does not roll back a script that fails midway
local function check_deltas(first)
  local at = first
  while at <= #ARGV do
    local n = tonumber(ARGV[at + D_N] or '')
    if not n or n < 0 or n ~= math.floor(n) or at + D_N + 2 * n > #ARGV then
      return 'a delta is customer, event id, stamp, ms, channel, touchpoint, amount, '
        .. 'order, recent, n, then n name/value pairs'
    end
    local ms = tonumber(ARGV[at + D_MS])
    if not (ms and tonumber(ARGV[at + D_AMOUNT]) and tonumber(ARGV[at + D_ORDER])) then
      return 'ms, amount and order must be numbers'
    end
    DELTA_MS[at] = ms
    DELTA_END[at] = at + D_PAIRS + 2 * n
    at = DELTA_END[at]
  end
  return nil
end

-- h: the profile as a Lua table; dirty: the fields to write back
local function set_latest(h, dirty, name, st, value)
  local at = name .. '@'
  local current = h[at]
  if (not current) or st > current then
    h[at] = st
    h[name] = value
    dirty[at] = true
    dirty[name] = true
  end
end

local function incr(h, dirty, name, by)
  local current = h[name]
  if by == 0 and current then return end  -- unchanged (as written by int())
  h[name] = int((tonumber(current) or 0) + by)
  dirty[name] = true
end

-- Fold the fields of the delta at ARGV[at] into h (state/profile_hash.py fold_delta).
local function fold_delta(h, dirty, at)
  local st, ms, channel = ARGV[at + D_STAMP], ARGV[at + D_MS], ARGV[at + D_CHANNEL]
  incr(h, dirty, 'v', 1)
  incr(h, dirty, 'count', 1)
  incr(h, dirty, 'n:' .. channel, 1)
  incr(h, dirty, 'ltv_c', tonumber(ARGV[at + D_AMOUNT]))
  incr(h, dirty, 'orders', tonumber(ARGV[at + D_ORDER]))
  local first = h.first
  if (not first) or DELTA_MS[at] < tonumber(first) then
    h.first = ms
    dirty.first = true
  end
  local current = h['last@']
  if (not current) or st > current then
    h['last@'], h.last_ms, h.last_event = st, ms, ARGV[at + D_EVENT]
    h.last_channel, h.last_touchpoint = channel, ARGV[at + D_TOUCHPOINT]
    dirty['last@'], dirty.last_ms, dirty.last_event = true, true, true
    dirty.last_channel, dirty.last_touchpoint = true, true
  end
  local consent = false
  for k = at + D_PAIRS, delta_end(at) - 1, 2 do
    set_latest(h, dirty, ARGV[k], st, ARGV[k + 1])
    if string.sub(ARGV[k], 1, 8) == 'consent:' then consent = true end
  end
  if consent then
    h.optout = withdrawn(h)
    dirty.optout = true
  end
end

-- Wall-clock logs (the applied-event marks here, the recorded outcomes in identity.lua):
-- records by event id, each '<wall ms>|<value>', in buckets of half the retention:
-- bucket g (key base .. ':' .. g) holds the records made in [g * W, (g + 1) * W),
-- W = ceil(retention / 2), so every current record (made at or after now - retention)
-- is in bucket g - 2, g - 1 or g of now, and a bucket is deleted whole once it can hold
-- none. base .. ':at' is the newest bucket written. A call costs one HMGET per bucket
-- and one HSET, where a sorted set of every record cost a ZADD and a pruning ZREM per
-- record (and ~110 bytes each). A record outlives its retention by at most W.
local function bucket_of(now, retention)
  return math.floor(now / math.max(1, math.ceil(retention / 2)))
end

-- The latest record of each id: found[id] = {wall ms, value, bucket}, current or not.
local function bucket_read(base, ids, now)
  local found = {}
  if #ids == 0 then return found end
  local g = now.bucket
  for b = g, g - 2, -1 do
    local key = base .. ':' .. int(b)
    for i = 1, #ids, CHUNK do
      local j = math.min(i + CHUNK - 1, #ids)
      local got = redis.call('HMGET', key, unpack(ids, i, j))
      for k = i, j do
        local text = got[k - i + 1]
        local id = ids[k]
        if text and not found[id] then
          local bar = string.find(text, '|', 1, true)
          found[id] = {tonumber(string.sub(text, 1, bar - 1)), string.sub(text, bar + 1), b}
        end
      end
    end
  end
  return found
end

-- Write rows {id, value, wall ms, bucket}, then delete the buckets that can no longer
-- hold a current record (now = {ms, bucket}).
local function bucket_write(base, rows, now)
  local by_bucket, buckets = {}, {}
  for _, row in ipairs(rows) do
    local b = row[4]
    local fields = by_bucket[b]
    if not fields then
      fields = {}
      by_bucket[b] = fields
      buckets[#buckets + 1] = b
    end
    fields[#fields + 1] = row[1]
    fields[#fields + 1] = int(row[3]) .. '|' .. row[2]
  end
  for _, b in ipairs(buckets) do call_chunked('HSET', base .. ':' .. int(b), nil, by_bucket[b], 2) end
  local g = now.bucket
  local newest = tonumber(redis.call('GET', base .. ':at'))
  if newest and newest < g then
    -- buckets below newest - 2 went when newest was set
    for b = newest - 2, math.min(newest, g - 3) do redis.call('UNLINK', base .. ':' .. int(b)) end
  end
  if (not newest and #rows > 0) or (newest and newest < g) then
    redis.call('SET', base .. ':at', int(g))
  end
end

local function clock(given, retention)
  local ms = wall_ms(given)
  return {ms = ms, bucket = bucket_of(ms, retention)}
end

-- Apply one customer's deltas (batch order; `group` holds their positions, `index`
-- their rank in the batch) to its profile table h. Returns the rank of the delta that
-- made the profile due (nil: not due); queues the pending-set and mark writes in batch.
local function apply_customer(P, cid, group, index, batch, h)
  local key = P .. 'prof:' .. cid
  local dirty = {}
  local window, interval = batch.window, batch.interval
  local seen = nil
  if window > 0 then
    seen = {}
    -- Every applied id of this profile has an event time <= its last_ms (the latest
    -- stamp's ms; stamps order as ms for ms >= 0, merges keep the max): an event later
    -- than that cannot be in the set, so only the others are asked about (most of a
    -- stream in event-time order asks nothing).
    local newest = tonumber(h.last_ms)
    if newest and newest < 0 then newest = nil end
    local ids = {}
    for _, at in ipairs(group) do
      local event = ARGV[at + D_EVENT]
      if batch.marked[event] == cid then
        seen[event] = true
      elseif not newest or DELTA_MS[at] <= newest then
        ids[#ids + 1] = event
      end
    end
    for i = 1, #ids, CHUNK do
      local j = math.min(i + CHUNK - 1, #ids)
      local scores = redis.call('ZMSCORE', key .. ':applied', unpack(ids, i, j))
      for k = i, j do
        if scores[k - i + 1] then seen[ids[k]] = true end
      end
    end
  end
  local recent, applied = {}, {}
  -- pending: nil untouched, 'rem' removed, 'nx' add unless pending, 'set' add
  local pending, pending_ms, due_at = nil, nil, nil
  for k, at in ipairs(group) do
    local ms, event = DELTA_MS[at], ARGV[at + D_EVENT]
    -- A re-applied event changes no field but still meets the publication rule:
    -- a publication lost with the first attempt's reply goes out again.
    if not (seen and seen[event]) then
      if seen then
        seen[event] = true
        applied[#applied + 1] = ms
        applied[#applied + 1] = event
        if batch.retention > 0 then
          local marks = batch.new_marks
          marks[#marks + 1] = {event, cid, batch.now.ms, batch.now.bucket}
        end
      end
      fold_delta(h, dirty, at)
      local entry = ARGV[at + D_RECENT]
      if entry ~= '' then
        recent[#recent + 1] = ms
        recent[#recent + 1] = entry
      end
    end
    if batch.publish then
      local emit = h.emit
      if (not emit) or ms - tonumber(emit) >= interval then
        h.emit = ARGV[at + D_MS]
        dirty.emit = true
        pending = 'rem'
        due_at = due_at or index[k]
      elseif pending == nil then
        pending, pending_ms = 'nx', ms
      elseif pending == 'rem' then
        pending, pending_ms = 'set', ms
      end
    end
  end
  write_dirty(key, h, dirty)
  if #recent > 0 and batch.recent > 0 then
    call_chunked('ZADD', key .. ':recent', nil, recent, 2)
    redis.call('ZREMRANGEBYRANK', key .. ':recent', 0, -(batch.recent + 1))
  end
  if #applied > 0 then
    call_chunked('ZADD', key .. ':applied', nil, applied, 2)
    -- same horizon as state/profile_hash.py applied_horizon
    local horizon = tonumber(h.last_ms) - window
    redis.call('ZREMRANGEBYSCORE', key .. ':applied', '-inf', '(' .. int(horizon))
  end
  if pending == 'rem' then
    batch.pending_rem[#batch.pending_rem + 1] = cid
  elseif pending == 'nx' then
    batch.pending_nx[#batch.pending_nx + 1] = pending_ms
    batch.pending_nx[#batch.pending_nx + 1] = cid
  elseif pending == 'set' then
    batch.pending_set[#batch.pending_set + 1] = pending_ms
    batch.pending_set[#batch.pending_set + 1] = cid
  end
  return due_at
end

-- The customers this batch's events were applied to within the retention (marks), by
-- event id, as canonical ids; a mark made before its customer's id was erased names
-- nobody (state/memory.py _marked).
local function read_marks(P, ids, now, horizon, canonical)
  local marked = {}
  for id, record in pairs(bucket_read(P .. 'marks', ids, now)) do
    local at, owner = record[1], record[2]
    if at >= horizon then
      local erased = tonumber(redis.call('ZSCORE', P .. 'erased', owner))
      if not (erased and erased >= horizon and erased >= at) then
        marked[id] = canonical(owner)
      end
    end
  end
  return marked
end

-- The canonical ids of customer ids: one MGET of their alias keys (merges keep aliases
-- one hop deep, so canonical() is only asked about the few that have one).
local function canonical_all(ids, alias_key, canonical)
  local keys = {}
  for k, c in ipairs(ids) do keys[k] = alias_key(c) end
  local canon = {}
  for i = 1, #keys, CHUNK do
    local j = math.min(i + CHUNK - 1, #keys)
    local got = redis.call('MGET', unpack(keys, i, j))
    for k = i, j do
      local survivor = got[k - i + 1]
      canon[ids[k]] = survivor and canonical(survivor) or ids[k]
    end
  end
  return canon
end

-- Fold the deltas from ARGV[first] on into the profiles; batch = {interval, publish,
-- recent, window, retention, now ('' the server's clock)}. canonical(id) follows
-- aliases, alias_key(id) names an id's alias key; live(cid) says whether the customer
-- exists (an erased or never resolved one never gets a profile back; a profile hash
-- exists only for a live customer, so only customers without one are asked). Returns
-- the customers due for publication (in the order they became due, then released
-- pending ones by time), and the profile tables in hand, by customer.
local function apply_profiles(P, batch, first, canonical, live, alias_key)
  local given, listed, at = {}, {}, first
  while at <= #ARGV do
    local c = ARGV[at]
    if not listed[c] then
      listed[c] = true
      given[#given + 1] = c
    end
    at = delta_end(at)
  end
  local canon = canonical_all(given, alias_key, canonical)
  local groups, indexes, order, alive, tables = {}, {}, {}, {}, {}
  local max_ms, rank = nil, 0
  at = first
  while at <= #ARGV do
    rank = rank + 1
    local cid = canon[ARGV[at]]
    local ok = alive[cid]
    if ok == nil then
      local h = read_hash(P .. 'prof:' .. cid)
      ok = next(h) ~= nil or live(cid)
      alive[cid] = ok
      if ok then tables[cid] = h end
    end
    if ok then
      local ms = DELTA_MS[at]
      if (not max_ms) or ms > max_ms then max_ms = ms end
      local group = groups[cid]
      if not group then
        group = {}
        groups[cid] = group
        indexes[cid] = {}
        order[#order + 1] = cid
      end
      group[#group + 1] = at
      indexes[cid][#group] = rank
    end
    at = delta_end(at)
  end
  -- applied-event marks, only with the window on (as state/memory.py)
  batch.marked, batch.new_marks = {}, {}
  batch.pending_rem, batch.pending_nx, batch.pending_set = {}, {}, {}
  if batch.window <= 0 then batch.retention = 0 end
  if batch.retention > 0 then
    batch.now = clock(batch.now, batch.retention)
    local ids = {}
    for _, cid in ipairs(order) do
      for _, pos in ipairs(groups[cid]) do ids[#ids + 1] = ARGV[pos + D_EVENT] end
    end
    batch.marked = read_marks(P, ids, batch.now, batch.now.ms - batch.retention, canonical)
  end
  local became_due = {}
  for _, cid in ipairs(order) do
    local due_at = apply_customer(P, cid, groups[cid], indexes[cid], batch, tables[cid])
    if due_at then became_due[#became_due + 1] = {due_at, cid} end
  end
  local pkey = P .. 'prof:pending'
  if #batch.pending_rem > 0 then call_chunked('ZREM', pkey, nil, batch.pending_rem, 1) end
  if #batch.pending_nx > 0 then call_chunked('ZADD', pkey, 'NX', batch.pending_nx, 2) end
  if #batch.pending_set > 0 then call_chunked('ZADD', pkey, nil, batch.pending_set, 2) end
  if batch.retention > 0 then bucket_write(P .. 'marks', batch.new_marks, batch.now) end
  table.sort(became_due, function(a, b) return a[1] < b[1] end)
  local due, is_due = {}, {}
  for k, entry in ipairs(became_due) do
    due[k] = entry[2]
    is_due[entry[2]] = true
  end
  if max_ms and batch.publish then
    local ready = redis.call('ZRANGEBYSCORE', pkey, '-inf', int(max_ms - batch.interval))
    if #ready > 0 then
      call_chunked('ZREM', pkey, nil, ready, 1)
      local emit = int(max_ms)
      for _, cid in ipairs(ready) do
        redis.call('HSET', P .. 'prof:' .. cid, 'emit', emit)
        if tables[cid] then tables[cid].emit = emit end
        if not is_due[cid] then
          is_due[cid] = true
          due[#due + 1] = cid
        end
      end
    end
  end
  return due, tables
end

local function drop_profile(P, cid)
  local key = P .. 'prof:' .. cid
  redis.call('DEL', key, key .. ':recent', key .. ':applied')
  redis.call('ZREM', P .. 'prof:pending', cid)
end

-- Fold the profile of src into dst and delete src's: counters add, latest stamp wins,
-- applied event ids are pooled (so re-applying either side's events stays a no-op).
local function fold_profile(P, src, dst, recent_limit)
  local skey, dkey = P .. 'prof:' .. src, P .. 'prof:' .. dst
  local h = read_hash(skey)
  local d, dirty = read_hash(dkey), {}
  for name, value in pairs(h) do
    if COUNTERS[name] or string.sub(name, 1, 2) == 'n:' then
      incr(d, dirty, name, tonumber(value))
    elseif name == 'first' then
      if (not d.first) or tonumber(value) < tonumber(d.first) then
        d.first = value
        dirty.first = true
      end
    end
  end
  for name, st in pairs(h) do
    if string.sub(name, -1) == '@' then
      local group = string.sub(name, 1, -2)
      local current = d[name]
      if (not current) or st > current then
        d[name] = st
        dirty[name] = true
        for _, m in ipairs((group == 'last') and LAST_FIELDS or {group}) do
          if h[m] ~= nil then
            d[m] = h[m]
            dirty[m] = true
          end
        end
      end
    end
  end
  for name in pairs(d) do
    if string.sub(name, 1, 8) == 'consent:' or string.sub(name, 1, 9) == 'rconsent:' then
      d.optout = withdrawn(d)
      dirty.optout = true
      break
    end
  end
  write_dirty(dkey, d, dirty)
  if redis.call('EXISTS', skey .. ':recent') == 1 then
    redis.call('ZUNIONSTORE', dkey .. ':recent', 2, dkey .. ':recent', skey .. ':recent',
      'AGGREGATE', 'MAX')
    redis.call('ZREMRANGEBYRANK', dkey .. ':recent', 0, -(recent_limit + 1))
  end
  if redis.call('EXISTS', skey .. ':applied') == 1 then
    redis.call('ZUNIONSTORE', dkey .. ':applied', 2, dkey .. ':applied', skey .. ':applied',
      'AGGREGATE', 'MAX')
  end
  local pending = redis.call('ZSCORE', P .. 'prof:pending', src)
  if pending then
    redis.call('ZADD', P .. 'prof:pending', 'LT', pending, dst)
  end
  drop_profile(P, src)
end
