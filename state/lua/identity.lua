#!lua
-- The identity graph of the single customer view, in one atomic call per batch.
--
-- ARGV[1] key prefix, ARGV[2] operation, then its arguments:
--   resolve      ARGV[3] cjson policy {priority, limits, default_limit, recent_limit, weak,
--                window (event-time ms outcomes are recorded for; 0: not recorded)}; from ARGV[4] on,
--                per request: event_id, event_time_ms, new customer id, n, then n
--                "type:value" members, already blocked, hashed and ordered by Python
--                (state/store.py: prepare). Plain arguments rather than one JSON
--                document: decoding a batch with cjson cost more than resolving it.
--                Returns one string per request: "<customer id>", "+<customer id>" when
--                it was created, or, when it merged or met a conflict (now, or recorded
--                under its event id by an earlier run), a cjson array
--                  [customer_id, created (0/1), merged, refused, limited]
--                and, when the customer's profile lists withdrawn consent (its 'optout'
--                field: "<purpose>=<ms>" lines), that text as a sixth element
--                merged = [[survivor, merged id, [linking members]]],
--                refused = [[survivor, other id, [types], [linking members]]],
--                limited = [[customer id, member]] (cjson writes an empty array as {}).
--   lookup       "type:value"  -> canonical customer id or nil
--   canonical    customer id   -> canonical customer id
--   identifiers  customer id   -> the canonical customer's "type:value" members
--   erase        customer id   -> {canonical id, existed (0/1), {members}, {aliases}}
--   profile      rules, then deltas (state/lua/profile.lua) -> due profiles (read_profiles)
--   profile_get  customer id   -> its profile (read_profiles, one entry) or nil
--   flush        (nothing)     -> every pending profile (read_profiles)
--
-- Keys (P = prefix):
--   P id:<type>:<value>  string  customer id the identifier links to
--   P cust:<id>          hash    created_ms, created_by, n:<type> = count of that type
--   P cust:<id>:ids      set     "type:value" members
--   P cust:<id>:merged   set     every id merged into this one (its aliases)
--   P alias:<id>         string  survivor of a merged id (always canonical: merges re-point)
--   P outcomes           hash    event id -> cjson {merged, refused, limited} it produced,
--                                reported again when the event is resolved again
--   P outcomes:ms        zset    event id by event time, to trim the hash to the window
--
-- Keys are built here instead of being declared in KEYS because a walk discovers them
-- (identifier -> customer -> its identifiers). That is fine on one primary. Redis
-- Cluster needs every key of a call in one slot; the plan is to shard the graph by a
-- hash tag and route each batch to its shard, which first needs identifiers that can
-- link across shards to be resolved there (documented before it is built).
--
-- Redis does not roll back a script that fails half way, so everything that can fail
-- (decoding, validation) happens before the first write, and the walk itself only
-- issues commands that cannot fail on keys of the layout above. The "#!lua" line
-- (no flags: may write) makes Redis refuse the whole call up front when it is out
-- of memory, instead of failing at the first write.
-- Mirrored step for step by state/memory.py; keep the two in sync.

local P = ARGV[1]
local OP = ARGV[2]
local ARG = ARGV[3]
local FIRST_REQUEST = 4

local MAX_ALIAS_HOPS = 64
local SADD_CHUNK = 1000
-- unpack() of one request's members must stay far below the Lua C stack (8000)
local MAX_IDENTIFIERS = 1000

local function id_key(member) return P .. 'id:' .. member end
local function cust_key(cid) return P .. 'cust:' .. cid end
local function ids_key(cid) return P .. 'cust:' .. cid .. ':ids' end
local function merged_key(cid) return P .. 'cust:' .. cid .. ':merged' end
local function alias_key(cid) return P .. 'alias:' .. cid end
local OUTCOMES, OUTCOME_TIMES = P .. 'outcomes', P .. 'outcomes:ms'

local function member_type(member)
  return string.sub(member, 1, string.find(member, ':', 1, true) - 1)
end

local function canonical(cid)
  for _ = 1, MAX_ALIAS_HOPS do
    local survivor = redis.call('GET', alias_key(cid))
    if not survivor then return cid end
    cid = survivor
  end
  -- merges keep aliases one hop deep, so this means the graph was edited by hand
  error('alias chain longer than ' .. MAX_ALIAS_HOPS .. ' hops at ' .. cid)
end

local function sadd_all(key, members)
  -- unpack() is bounded by the Lua C stack, so big sets go in chunks
  for i = 1, #members, SADD_CHUNK do
    redis.call('SADD', key, unpack(members, i, math.min(i + SADD_CHUNK - 1, #members)))
  end
end

-- The profiles of cids: {cid, hash as JSON, {recent entries}, {identifier members}}
-- each. The hash goes as one cjson text (cheaper to parse than a flat array of
-- fields); the entries and members go as they are (joining them here cost more than
-- the client's join). tables holds profiles this call already has in hand.
local function read_profiles(cids, tables)
  local out = {}
  for i, cid in ipairs(cids) do
    local key = P .. 'prof:' .. cid
    out[i] = {cid, cjson.encode(tables and tables[cid] or read_hash(key)),
              redis.call('ZRANGE', key .. ':recent', 0, -1),
              redis.call('SMEMBERS', ids_key(cid))}
  end
  return out
end

local function resolve_all(policy)
  local rank = {}
  for i, id_type in ipairs(policy.priority) do rank[id_type] = i end
  local other_rank = #policy.priority + 1
  local limits, default_limit = policy.limits, policy.default_limit

  local function limit_of(id_type) return limits[id_type] or default_limit end

  local function type_before(a, b)
    local ra, rb = rank[a] or other_rank, rank[b] or other_rank
    if ra ~= rb then return ra < rb end
    return byte_order_less(a, b)
  end

  -- what survivor selection and the merge guard need to know about a customer
  local function info(cid)
    local flat = redis.call('HGETALL', cust_key(cid))
    local c = {id = cid, counts = {}, created = 0, rank = other_rank + 1, best = ''}
    for i = 1, #flat, 2 do
      local name, value = flat[i], flat[i + 1]
      if name == 'created_ms' then
        c.created = tonumber(value)
      elseif string.sub(name, 1, 2) == 'n:' then
        local id_type = string.sub(name, 3)
        c.counts[id_type] = tonumber(value)
        local r = rank[id_type] or other_rank
        if r < c.rank or (r == c.rank and byte_order_less(id_type, c.best)) then
          c.rank, c.best = r, id_type
        end
      end
    end
    return c
  end

  -- strongest identifier type, then older, then smaller id
  local function survivor_before(a, b)
    if a.rank ~= b.rank then return a.rank < b.rank end
    if a.best ~= b.best then return byte_order_less(a.best, b.best) end
    if a.created ~= b.created then return a.created < b.created end
    return byte_order_less(a.id, b.id)
  end

  local function over_limits(s, m)
    local over = {}
    for id_type, count in pairs(m.counts) do
      if (s.counts[id_type] or 0) + count > limit_of(id_type) then over[#over + 1] = id_type end
    end
    table.sort(over, type_before)
    return over
  end

  local weak = {}
  for _, id_type in ipairs(policy.weak or {}) do weak[id_type] = true end

  local function strong(c)
    for id_type, count in pairs(c.counts) do
      if count > 0 and not weak[id_type] then return true end
    end
    return false
  end

  -- {'weak:<type>'} when only weak identifiers (shared devices) tie two known customers
  local function weak_link(s, m, members, owners)
    if not (strong(s) and strong(m)) then return {} end
    for _, cid in ipairs({s.id, m.id}) do
      local held, all_weak = {}, true
      for i = 1, #members do
        if owners[i] == cid then
          local id_type = member_type(members[i])
          held[#held + 1] = id_type
          if not weak[id_type] then all_weak = false end
        end
      end
      if all_weak then
        table.sort(held, type_before)
        return {'weak:' .. held[1]}
      end
    end
    return {}
  end

  -- The profile's 'optout' field, read once per customer and batch: within a resolve
  -- call only a merge (fold_profile) rewrites it, and fold forgets the survivor's.
  local optouts = {}
  local function optout_of(cid)
    local text = optouts[cid]
    if text == nil then
      text = redis.call('HGET', P .. 'prof:' .. cid, 'optout') or ''
      optouts[cid] = text
    end
    return text
  end

  local function fold(m, s)
    local members = redis.call('SMEMBERS', ids_key(m.id))
    for _, member in ipairs(members) do redis.call('SET', id_key(member), s.id) end
    sadd_all(ids_key(s.id), members)
    for id_type, count in pairs(m.counts) do
      redis.call('HINCRBY', cust_key(s.id), 'n:' .. id_type, count)
      s.counts[id_type] = (s.counts[id_type] or 0) + count
    end
    local aliases = redis.call('SMEMBERS', merged_key(m.id))
    aliases[#aliases + 1] = m.id
    for _, alias in ipairs(aliases) do redis.call('SET', alias_key(alias), s.id) end
    sadd_all(merged_key(s.id), aliases)
    redis.call('DEL', cust_key(m.id), ids_key(m.id), merged_key(m.id))
    fold_profile(P, m.id, s.id, policy.recent_limit)
    optouts[s.id], optouts[m.id] = nil, nil
  end

  -- Most requests only name their customer, so that is all they send back: nested
  -- arrays for 1000 requests cost more to build and parse than resolving them.
  -- A customer's withdrawn consent purposes go as a sixth element, only when there are
  -- any (the profile's 'optout' field, state/profile_hash.py withdrawn_field).
  local function reply(target, created, entries, optout)
    if optout == '' and #entries[1] == 0 and #entries[2] == 0 and #entries[3] == 0 then
      if created then return '+' .. target end
      return target
    end
    return cjson.encode({target, created and 1 or 0, entries[1], entries[2], entries[3], optout})
  end


  -- Recorded entries whose customers all still exist, live or merged into a live one
  -- (state/outcomes.py known_only), and whether any were dropped (erased).
  local function known(cid) return redis.call('EXISTS', cust_key(cid), alias_key(cid)) > 0 end
  local function known_only(recorded)
    local kept, dropped = {}, false
    for k = 1, 3 do
      kept[k] = {}
      for _, e in ipairs(recorded[k]) do
        -- a limited entry names one customer, a merge or a refusal two
        if known(e[1]) and (k == 3 or known(e[2])) then
          kept[k][#kept[k] + 1] = e
        else
          dropped = true
        end
      end
    end
    return kept, dropped
  end

  -- The recorded entries, then the fresh ones they do not hold (state/outcomes.py
  -- combine): an entry is the same as a recorded one of its kind when it names the
  -- same second thing (merged id, refused id, limited member). Returns them and
  -- whether any was new.
  local function combine(kept, fresh)
    local out, added = {}, false
    for k = 1, 3 do
      local list, seen = {}, {}
      for _, e in ipairs(kept[k]) do
        list[#list + 1] = e
        seen[e[2]] = true
      end
      for _, e in ipairs(fresh[k]) do
        if not seen[e[2]] then
          list[#list + 1] = e
          added = true
        end
      end
      out[k] = list
    end
    return out, added
  end

  local function walk(at)
    local event_id, time_ms, new_id = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    local members, keys = {}, {}
    for i = 1, tonumber(ARGV[at + 3]) do
      members[i] = ARGV[at + 3 + i]
      keys[i] = id_key(members[i])
    end
    -- No alias hop: a merge re-points every link of the merged customer, so a
    -- link always names a live (canonical) customer.
    local owners = redis.call('MGET', unpack(keys))
    local found, seen = {}, {}
    for _, owner in ipairs(owners) do
      if owner and not seen[owner] then
        seen[owner] = true
        found[#found + 1] = owner
      end
    end

    local target, created = nil, false
    local merged, refused = {}, {}
    if #found == 0 then
      -- A re-delivered creating event finds its customer under the deterministic
      -- id (or what it was merged into); one EXISTS settles the usual case.
      target = new_id
      if redis.call('EXISTS', cust_key(new_id), alias_key(new_id)) == 0 then
        created = true
      else
        target = canonical(new_id)
        if redis.call('EXISTS', cust_key(target)) == 0 then target, created = new_id, true end
      end
    elseif #found == 1 then
      target = found[1]
    else
      local ranked = {}
      for i, cid in ipairs(found) do ranked[i] = info(cid) end
      table.sort(ranked, survivor_before)
      local s = ranked[1]
      target = s.id
      for k = 2, #ranked do
        local m = ranked[k]
        local linking = {}
        for i = 1, #members do
          if owners[i] == s.id or owners[i] == m.id then linking[#linking + 1] = members[i] end
        end
        local over = over_limits(s, m)
        if #over == 0 then over = weak_link(s, m, members, owners) end
        if #over > 0 then
          refused[#refused + 1] = {s.id, m.id, over, linking}
        else
          fold(m, s)
          merged[#merged + 1] = {s.id, m.id, linking}
        end
      end
    end

    -- Link the identifiers nobody holds, as far as the limits allow. A request has
    -- one value per type, so each type's count is read once and written once.
    local fresh, fields = {}, {}
    for i, member in ipairs(members) do
      if not owners[i] then
        fresh[#fresh + 1] = i
        fields[#fields + 1] = 'n:' .. member_type(member)
      end
    end
    local limited = {}
    if #fresh == 0 then return target, created, {merged, refused, limited} end
    local hash = cust_key(target)
    local counts = created and {} or redis.call('HMGET', hash, unpack(fields))
    local links, added = {}, {}
    local record = created and {'created_ms', time_ms, 'created_by', event_id} or {}
    for k, i in ipairs(fresh) do
      local count = tonumber(counts[k] or '0')
      if count < limit_of(string.sub(fields[k], 3)) then
        links[#links + 1] = id_key(members[i])
        links[#links + 1] = target
        added[#added + 1] = members[i]
        record[#record + 1] = fields[k]
        record[#record + 1] = count + 1
      else
        limited[#limited + 1] = {target, members[i]}
      end
    end
    if #added > 0 then
      redis.call('MSET', unpack(links))
      redis.call('SADD', ids_key(target), unpack(added))
    end
    if #record > 0 then redis.call('HSET', hash, unpack(record)) end
    return target, created, {merged, refused, limited}
  end

  -- The recorded outcomes (state/outcomes.py): their entries as the walk makes them,
  -- {merged, refused, limited}, as cjson under the event id in OUTCOMES, its event time
  -- in OUTCOME_TIMES. One HMGET reads every record the batch may need; records made or
  -- changed by the batch are kept here and written once at the end.
  local window = policy.window or 0
  local records, changed, times, recorded_new = {}, {}, {}, false
  if window > 0 then
    local event_ids, listed = {}, {}
    local at = FIRST_REQUEST
    while at <= #ARGV do
      if not listed[ARGV[at]] then
        listed[ARGV[at]] = true
        event_ids[#event_ids + 1] = ARGV[at]
      end
      at = at + 4 + tonumber(ARGV[at + 3])
    end
    for i = 1, #event_ids, SADD_CHUNK do
      local j = math.min(i + SADD_CHUNK - 1, #event_ids)
      local texts = redis.call('HMGET', OUTCOMES, unpack(event_ids, i, j))
      for k = i, j do
        local text = texts[k - i + 1]
        records[event_ids[k]] = text and cjson.decode(text) or false
      end
    end
  end

  local function resolve(at)
    local event_id, time_ms = ARGV[at], ARGV[at + 1]
    local recorded = records[event_id] or false
    -- an erased customer's entries go before the walk can re-create its id
    local kept, dropped = {{}, {}, {}}, false
    if recorded then kept, dropped = known_only(recorded) end
    local target, created, fresh = walk(at)
    local entries, added = combine(kept, fresh)
    if window > 0 and (dropped or added) then
      local empty = #entries[1] == 0 and #entries[2] == 0 and #entries[3] == 0
      if not recorded then
        recorded_new = true
        times[event_id] = time_ms
      end
      records[event_id] = (not empty) and entries
      if empty then times[event_id] = nil end
      changed[event_id] = true
    end
    -- a customer created just now has no profile yet
    return reply(target, created, entries, created and '' or optout_of(target))
  end

  local out = {}
  local at = FIRST_REQUEST
  while at <= #ARGV do
    out[#out + 1] = resolve(at)
    at = at + 4 + tonumber(ARGV[at + 3])
  end
  for event_id in pairs(changed) do
    local entries = records[event_id]
    if entries then
      redis.call('HSET', OUTCOMES, event_id, cjson.encode(entries))
      if times[event_id] then redis.call('ZADD', OUTCOME_TIMES, times[event_id], event_id) end
    else
      redis.call('HDEL', OUTCOMES, event_id)
      redis.call('ZREM', OUTCOME_TIMES, event_id)
    end
  end
  if recorded_new then
    -- as OutcomeLog.trim: forget records older than the window before the latest one
    local top = redis.call('ZRANGE', OUTCOME_TIMES, -1, -1, 'WITHSCORES')
    if #top > 0 then
      local horizon = tonumber(top[2]) - window
      local old = redis.call('ZRANGEBYSCORE', OUTCOME_TIMES, '-inf', '(' .. int(horizon))
      if #old > 0 then
        call_chunked('HDEL', OUTCOMES, nil, old, 1)
        call_chunked('ZREM', OUTCOME_TIMES, nil, old, 1)
      end
    end
  end
  return out
end

local function validate(policy)
  if type(policy) ~= 'table' or type(policy.priority) ~= 'table'
      or type(policy.limits) ~= 'table' or type(policy.default_limit) ~= 'number' then
    return 'the policy needs priority, limits and default_limit'
  end
  if policy.window ~= nil and type(policy.window) ~= 'number' then
    return 'the policy window must be a number'
  end
  local at = FIRST_REQUEST
  while at <= #ARGV do
    local n = tonumber(ARGV[at + 3] or '')
    if not n or n < 1 or n > MAX_IDENTIFIERS or at + 3 + n > #ARGV then
      return 'a request is event_id, event_time_ms, new_id, n (1 to '
        .. MAX_IDENTIFIERS .. '), then n members'
    end
    if not tonumber(ARGV[at + 1]) then return 'event_time_ms must be a number' end
    for i = at + 4, at + 3 + n do
      if not string.find(ARGV[i], ':', 2, true) then
        return 'identifier members are "type:value" strings'
      end
    end
    at = at + 4 + n
  end
  return nil
end

if OP == 'resolve' then
  local ok, policy = pcall(cjson.decode, ARG)
  if not ok then return redis.error_reply('the resolve policy is not JSON') end
  local problem = validate(policy)
  if problem then return redis.error_reply(problem) end
  return resolve_all(policy)
elseif OP == 'lookup' then
  local owner = redis.call('GET', id_key(ARG))
  if not owner then return false end
  return canonical(owner)
elseif OP == 'canonical' then
  return canonical(ARG)
elseif OP == 'identifiers' then
  return redis.call('SMEMBERS', ids_key(canonical(ARG)))
elseif OP == 'erase' then
  local cid = canonical(ARG)
  if redis.call('EXISTS', cust_key(cid)) == 0 then
    return {cid, 0, {}, {}}
  end
  local members = redis.call('SMEMBERS', ids_key(cid))
  for _, member in ipairs(members) do
    -- only links that are ours: never cut someone else's identifier
    if redis.call('GET', id_key(member)) == cid then redis.call('DEL', id_key(member)) end
  end
  local aliases = redis.call('SMEMBERS', merged_key(cid))
  for _, alias in ipairs(aliases) do redis.call('DEL', alias_key(alias)) end
  redis.call('DEL', cust_key(cid), ids_key(cid), merged_key(cid))
  drop_profile(P, cid)
  return {cid, 1, members, aliases}
elseif OP == 'profile' then
  -- ARGV[3..6]: interval ms, publish (0/1), recent limit, idempotence window ms; from
  -- ARGV[7] on the deltas (state/lua/profile.lua). Returns the profiles due for
  -- publication (read_profiles).
  local batch = {interval = tonumber(ARGV[3]), publish = ARGV[4] == '1',
                 recent = tonumber(ARGV[5]), window = tonumber(ARGV[6])}
  if not (batch.interval and batch.recent and batch.window) then
    return redis.error_reply('profile needs interval, publish, recent and window first')
  end
  local problem = check_deltas(7)
  if problem then return redis.error_reply(problem) end
  local function live(cid) return redis.call('EXISTS', cust_key(cid)) == 1 end
  local due, tables = apply_profiles(P, batch, 7, canonical, live)
  return read_profiles(due, tables)
elseif OP == 'profile_get' then
  local cid = canonical(ARG)
  if redis.call('EXISTS', P .. 'prof:' .. cid) == 0 then return false end
  return read_profiles({cid})[1]
elseif OP == 'flush' then
  local ready = redis.call('ZRANGE', P .. 'prof:pending', 0, -1)
  redis.call('DEL', P .. 'prof:pending')
  return read_profiles(ready)
end
return redis.error_reply('unknown operation ' .. tostring(OP))
