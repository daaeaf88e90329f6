#!lua
-- The identity graph of the single customer view, in one atomic call per batch.
--
-- ARGV[1] key prefix, ARGV[2] operation, then its arguments:
--   resolve      ARGV[3] cjson policy {priority, limits, default_limit, recent_limit, weak,
--                shared ({type: customers}), retention (wall-clock ms outcomes are kept
--                after they were recorded; 0: not recorded)}, ARGV[4] the wall-clock
--                ms to record at ('': the server's TIME); from ARGV[5] on,
--                per request: event_id, event_time_ms, new customer id, n, then n
--                "type:value" members, already blocked, hashed and ordered by Python
--                (state/store.py: prepare), then k and k purpose/granted ('1'/'0')
--                pairs: the event's consent changes, folded into its customer's
--                'rconsent:<purpose>' fields once its reply is made (before the next
--                request; not for a recorded reply). Plain arguments rather than one
--                JSON document: decoding a batch with cjson cost more than resolving it.
--                Returns one string per request: "<customer id>", "+<customer id>" when
--                it was created, or, when it merged, met a conflict, met shared
--                identifiers or its customer's profile lists withdrawn consent, a
--                cjson array [customer_id ('' none), created (0/1), merged, refused,
--                limited, optout, shared] where
--                merged = [[survivor, merged id, [linking members]]],
--                refused = [[event's customer, other id, [types], [linking members],
--                            [members left with the other: unlinked]]],
--                limited = [[customer id, member]], optout = the profile's 'optout'
--                field ("<purpose>=<ms>" lines, '' none), shared = [members not used
--                because shared] (cjson writes an empty array as {}).
--                A request whose event id has a recorded reply gets that reply again
--                (state/outcomes.py), without a walk.
--   lookup       "type:value"  -> canonical customer id or nil
--   canonical    customer id   -> canonical customer id
--   identifiers  customer id   -> the canonical customer's "type:value" members
--   erase        customer id, retention ms, wall-clock ms ('': TIME)
--                              -> {canonical id, existed (0/1), {members}, {aliases}}
--   profile      rules, then deltas (state/lua/profile.lua) -> due profiles (read_profiles)
--   profile_get  customer id   -> its profile (read_profiles, one entry) or nil
--   flush        (nothing)     -> every pending profile (read_profiles)
--
-- Keys (P = prefix):
--   P id:<type>:<value>  string  customer id the identifier links to
--   P cust:<id>          hash    created_ms, created_by, first_ms, first_by (its earliest
--                                event), n:<type> = count of that type
--   P cust:<id>:ids      set     "type:value" members
--   P cust:<id>:merged   set     every id merged into this one (its aliases)
--   P alias:<id>         string  survivor of a merged id (always canonical: merges re-point)
--   P outcomes:<bucket>  hash    event id -> '<wall ms>|<the reply it got>', returned again
--                                when the event is resolved again within the retention
--                                (wall-clock log buckets: profile.lua)
--   P outcomes:at        string  the newest bucket written
--   P shared:<member>    string  a shared identifier: how many customers presented it
--   P claims:<member>    set     customers that presented a shareable identifier in
--                                refused conflicts, until it is shared
--   P marks:<bucket>, P marks:at, P erased  the profile step's applied-event marks
--   P prof:<id>          hash    the profile (profile.lua); resolve writes its
--                                'rconsent:<purpose>' fields and 'optout' (record)
--   P prof:<id>:recent, P prof:<id>:applied  its recent entries and applied event ids
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
-- Mirrored step for step by state/memory.py and state/memory_graph.py; keep them in sync.

local P = ARGV[1]
local OP = ARGV[2]
local ARG = ARGV[3]
local FIRST_REQUEST = 5

local MAX_ALIAS_HOPS = 64
local SADD_CHUNK = 1000
-- unpack() of one request's members must stay far below the Lua C stack (8000)
local MAX_IDENTIFIERS = 1000

local function id_key(member) return P .. 'id:' .. member end
local function cust_key(cid) return P .. 'cust:' .. cid end
local function ids_key(cid) return P .. 'cust:' .. cid .. ':ids' end
local function merged_key(cid) return P .. 'cust:' .. cid .. ':merged' end
local function alias_key(cid) return P .. 'alias:' .. cid end
local OUTCOMES = P .. 'outcomes'
local function shared_key(member) return P .. 'shared:' .. member end
local function claims_key(member) return P .. 'claims:' .. member end

-- The position of the request after the one at ARGV[at] (the layout under 'resolve'),
-- and its number of members: read once by validate (tonumber() costs two strtod calls)
local REQUEST_END, REQUEST_N = {}, {}
local function request_end(at)
  local e = REQUEST_END[at]
  if not e then
    local n = tonumber(ARGV[at + 3])
    e = at + 5 + n + 2 * tonumber(ARGV[at + 4 + n])
    REQUEST_END[at], REQUEST_N[at] = e, n
  end
  return e
end

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

-- A new identifier version for a customer whose identifiers changed: unique over the
-- store's life (a counter, and the wall-clock ms so that a store rebuilt after losing
-- its data never hands out a version a client has cached). The profile step sends the
-- versions it holds the identifiers of and gets identifiers only for the others.
local function new_ids_version()
  return int(redis.call('INCR', P .. 'iv')) .. '@' .. int(wall_ms(''))
end

local function sadd_all(key, members)
  -- unpack() is bounded by the Lua C stack, so big sets go in chunks
  for i = 1, #members, SADD_CHUNK do
    redis.call('SADD', key, unpack(members, i, math.min(i + SADD_CHUNK - 1, #members)))
  end
end

-- The profiles of cids: {cid, hash as JSON, {recent entries}, {identifier members},
-- identifier version ('' none)} each; the members are false when known[cid] (the
-- version the caller holds them at) is the customer's version. The hash goes as one cjson text (cheaper to parse than a flat array of
-- fields); the entries and members go as they are (joining them here cost more than
-- the client's join). tables holds profiles this call already has in hand.
local function read_profiles(cids, tables, known)
  local out = {}
  for i, cid in ipairs(cids) do
    local key = P .. 'prof:' .. cid
    local version = redis.call('HGET', cust_key(cid), 'iv') or ''
    local members = false
    if version == '' or not known or known[cid] ~= version then
      members = redis.call('SMEMBERS', ids_key(cid))
    end
    out[i] = {cid, cjson.encode(tables and tables[cid] or read_hash(key)),
              redis.call('ZRANGE', key .. ':recent', 0, -1), members, version}
  end
  return out
end

local function resolve_all(policy)
  local rank = {}
  for i, id_type in ipairs(policy.priority) do rank[id_type] = i end
  local other_rank = #policy.priority + 1
  local limits, default_limit = policy.limits, policy.default_limit
  local shared_after = policy.shared or {}

  local function limit_of(id_type) return limits[id_type] or default_limit end

  local function type_before(a, b)
    local ra, rb = rank[a] or other_rank, rank[b] or other_rank
    if ra ~= rb then return ra < rb end
    return byte_order_less(a, b)
  end

  -- (ms, event id) before (ms, event id): event time, then event id in byte order
  local function earlier(ms_a, id_a, ms_b, id_b)
    if ms_a ~= ms_b then return ms_a < ms_b end
    return byte_order_less(id_a, id_b)
  end

  -- what survivor selection and the merge guard need to know about a customer;
  -- 'first' is its earliest event (a record written before it existed: the creating one)
  local function info(cid)
    local flat = redis.call('HGETALL', cust_key(cid))
    local c = {id = cid, counts = {}}
    local h = {}
    for i = 1, #flat, 2 do
      local name, value = flat[i], flat[i + 1]
      if string.sub(name, 1, 2) == 'n:' then
        -- kept as text: Lua's arithmetic reads it where needed (most walks never do)
        c.counts[string.sub(name, 3)] = value
      else
        h[name] = value
      end
    end
    c.first_ms = tonumber(h.first_ms or h.created_ms or '0')
    c.first_by = h.first_by or h.created_by or ''
    return c
  end

  -- the earliest event first, then the smaller id (state/store.py "Survivor")
  local function survivor_before(a, b)
    if a.first_ms ~= b.first_ms or a.first_by ~= b.first_by then
      return earlier(a.first_ms, a.first_by, b.first_ms, b.first_by)
    end
    return byte_order_less(a.id, b.id)
  end

  local function over_limits(counts, m)
    local over = {}
    for id_type, count in pairs(m.counts) do
      if (counts[id_type] or 0) + count > limit_of(id_type) then over[#over + 1] = id_type end
    end
    table.sort(over, type_before)
    return over
  end

  local weak = {}
  for _, id_type in ipairs(policy.weak or {}) do weak[id_type] = true end

  local function strong(c)
    for id_type, count in pairs(c.counts) do
      if tonumber(count) > 0 and not weak[id_type] then return true end
    end
    return false
  end

  -- {'weak:<type>'} when only weak identifiers (shared devices) tie the event's group
  -- of customers to m, both holding a stronger type
  local function weak_link(group, in_group, m, members, owners)
    local group_strong = false
    for _, c in ipairs(group) do
      if strong(c) then group_strong = true end
    end
    if not (group_strong and strong(m)) then return {} end
    for side = 1, 2 do
      local held, all_weak = {}, true
      for i = 1, #members do
        local o = owners[i]
        if (side == 1 and in_group[o]) or (side == 2 and o == m.id) then
          local id_type = member_type(members[i])
          held[#held + 1] = id_type
          if not weak[id_type] then all_weak = false end
        end
      end
      if #held > 0 and all_weak then
        table.sort(held, type_before)
        return {'weak:' .. held[1]}
      end
    end
    return {}
  end

  -- The profile's 'optout' field, read once per customer and batch: within a resolve
  -- call only a merge (fold_profile) and record() rewrite it; fold forgets the
  -- survivor's, record() keeps what it wrote.
  local optouts = {}
  local function optout_of(cid)
    local text = optouts[cid]
    if text == nil then
      text = redis.call('HGET', P .. 'prof:' .. cid, 'optout') or ''
      optouts[cid] = text
    end
    return text
  end

  -- Fold the consent changes of the request at ARGV[at] into its customer's record
  -- (state/profile_hash.py record_consent): latest by stamp per purpose, then 'optout'
  -- rewritten. Called once the request's reply is made, so the next request sees them.
  local function record(target, at)
    local n = REQUEST_N[at]
    local k = tonumber(ARGV[at + 4 + n])
    if k == 0 then return end
    local st = string.format('%015d', tonumber(ARGV[at + 1])) .. '|' .. ARGV[at]
    local key = P .. 'prof:' .. target
    local h, dirty = read_hash(key), {}
    for i = at + 5 + n, at + 3 + n + 2 * k, 2 do
      set_latest(h, dirty, 'rconsent:' .. ARGV[i], st, ARGV[i + 1])
    end
    h.optout = withdrawn(h)
    dirty.optout = true
    write_dirty(key, h, dirty)
    optouts[target] = h.optout
  end

  local function fold(m, s)
    local members = redis.call('SMEMBERS', ids_key(m.id))
    for _, member in ipairs(members) do redis.call('SET', id_key(member), s.id) end
    sadd_all(ids_key(s.id), members)
    redis.call('HSET', cust_key(s.id), 'iv', new_ids_version())
    for id_type, count in pairs(m.counts) do
      redis.call('HINCRBY', cust_key(s.id), 'n:' .. id_type, count)
      s.counts[id_type] = (s.counts[id_type] or 0) + count
    end
    -- the survivor has the earliest event of the two: its 'first' stays
    local aliases = redis.call('SMEMBERS', merged_key(m.id))
    aliases[#aliases + 1] = m.id
    for _, alias in ipairs(aliases) do redis.call('SET', alias_key(alias), s.id) end
    sadd_all(merged_key(s.id), aliases)
    redis.call('DEL', cust_key(m.id), ids_key(m.id), merged_key(m.id))
    fold_profile(P, m.id, s.id, policy.recent_limit)
    optouts[s.id], optouts[m.id] = nil, nil
  end

  -- Count the customers that presented the refused holder's identifiers (its own and
  -- the event's); one presented by more than its type's shared_after is shared from now
  -- on: detached from its holder, unless it is the holder's last identifier. The
  -- holder's profile then has a change to publish (its identifiers): it is pending
  -- from this event's time on, so the latest snapshot on cx.profiles shows it.
  local function claim(target, holder, unlinked, time_ms)
    for _, member in ipairs(unlinked) do
      local id_type = member_type(member)
      local most = shared_after[id_type]
      if most then
        local key = claims_key(member)
        redis.call('SADD', key, holder, target)
        local count = redis.call('SCARD', key)
        if count > most then
          redis.call('DEL', key)
          redis.call('SET', shared_key(member), count)
          if redis.call('SCARD', ids_key(holder)) > 1 then
            redis.call('DEL', id_key(member))
            redis.call('SREM', ids_key(holder), member)
            redis.call('HSET', cust_key(holder), 'iv', new_ids_version())
            if redis.call('HINCRBY', cust_key(holder), 'n:' .. id_type, -1) <= 0 then
              redis.call('HDEL', cust_key(holder), 'n:' .. id_type)
            end
            if redis.call('HEXISTS', P .. 'prof:' .. holder, 'v') == 1 then
              redis.call('ZADD', P .. 'prof:pending', 'LT', time_ms, holder)
            end
          end
        end
      end
    end
  end

  -- Most requests only name their customer, so that is all they send back: nested
  -- arrays for 1000 requests cost more to build and parse than resolving them.
  -- Otherwise [customer ('' none), created, merged, refused, limited, optout, shared];
  -- optout is the profile's 'optout' field (state/profile_hash.py withdrawn_field).
  local function reply(target, created, entries, optout, shared)
    if target ~= '' and optout == '' and #shared == 0
        and #entries[1] == 0 and #entries[2] == 0 and #entries[3] == 0 then
      if created then return '+' .. target end
      return target
    end
    return cjson.encode({target, created and 1 or 0, entries[1], entries[2], entries[3],
                         optout, shared})
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

  -- A recorded reply as it stands now: itself, without entries naming an erased
  -- customer, or nil when its customer was erased (or it is a record of the format
  -- before whole replies were recorded): then the event is walked afresh.
  local function recorded_reply(text)
    if string.sub(text, 1, 1) ~= '[' then
      local cid = text
      if string.sub(text, 1, 1) == '+' then cid = string.sub(text, 2) end
      if known(cid) then return text end
      return nil
    end
    local r = cjson.decode(text)
    if type(r[1]) ~= 'string' then return nil end
    if r[1] ~= '' and not known(r[1]) then return nil end
    local kept, dropped = known_only({r[3], r[4], r[5]})
    if not dropped then return text end
    return reply(r[1], r[2] == 1, kept, r[6], r[7])
  end

  -- Link the identifiers nobody holds to target as far as the limits allow, and move
  -- its earliest event back to this one if it is earlier. A request has one value per
  -- type, so each type's count is read once and written once. known: target's info()
  -- when the walk read it (its counts kept up to date by fold), else nil (read here).
  local function attach(target, created, members, owners, event_id, time_ms, known)
    local fresh, fields = {}, {'first_ms', 'first_by', 'created_ms', 'created_by'}
    for i, member in ipairs(members) do
      if not owners[i] then
        fresh[#fresh + 1] = i
        fields[#fields + 1] = 'n:' .. member_type(member)
      end
    end
    local hash = cust_key(target)
    local limited, record = {}, {}
    local counts = {}
    if created then
      record = {'created_ms', time_ms, 'created_by', event_id,
                'first_ms', time_ms, 'first_by', event_id}
    elseif known then
      if earlier(tonumber(time_ms), event_id, known.first_ms, known.first_by) then
        record = {'first_ms', time_ms, 'first_by', event_id}
      end
      for k = 5, #fields do counts[k] = known.counts[string.sub(fields[k], 3)] end
    else
      counts = redis.call('HMGET', hash, unpack(fields))
      local first_ms = tonumber(counts[1] or counts[3] or '0')
      local first_by = counts[1] and counts[2] or counts[4] or ''
      if earlier(tonumber(time_ms), event_id, first_ms, first_by) then
        record = {'first_ms', time_ms, 'first_by', event_id}
      end
    end
    local links, added = {}, {}
    for k, i in ipairs(fresh) do
      local count = tonumber(counts[k + 4] or '0')
      local field = fields[k + 4]
      if count < limit_of(string.sub(field, 3)) then
        links[#links + 1] = id_key(members[i])
        links[#links + 1] = target
        added[#added + 1] = members[i]
        record[#record + 1] = field
        record[#record + 1] = count + 1
      else
        limited[#limited + 1] = {target, members[i]}
      end
    end
    if #added > 0 then
      redis.call('MSET', unpack(links))
      redis.call('SADD', ids_key(target), unpack(added))
      record[#record + 1] = 'iv'
      record[#record + 1] = new_ids_version()
    end
    if #record > 0 then redis.call('HSET', hash, unpack(record)) end
    return limited
  end

  -- A new customer under the event's deterministic id, or (a re-delivered creating
  -- event) the customer that id already is or was merged into.
  local function create(new_id)
    if redis.call('EXISTS', cust_key(new_id), alias_key(new_id)) == 0 then
      return new_id, true
    end
    local target = canonical(new_id)
    if redis.call('EXISTS', cust_key(target)) == 0 then return new_id, true end
    return target, false
  end

  -- Returns the event's customer ('' none), created, {merged, refused, limited}, shared.
  local function walk(at)
    local event_id, time_ms, new_id = ARGV[at], ARGV[at + 1], ARGV[at + 2]
    local n = REQUEST_N[at]
    local all, keys, of_key = {}, {}, {}
    for i = 1, n do
      all[i] = ARGV[at + 3 + i]
      keys[i] = id_key(all[i])
    end
    -- one MGET reads the links and, for types that can be shared, the shared marks
    for i = 1, n do
      if shared_after[member_type(all[i])] then
        keys[#keys + 1] = shared_key(all[i])
        of_key[#keys] = i
      end
    end
    local got = redis.call('MGET', unpack(keys))
    local is_shared = {}
    for k = n + 1, #keys do
      if got[k] then is_shared[of_key[k]] = true end
    end
    -- No alias hop: a merge re-points every link of the merged customer, so a
    -- link always names a live (canonical) customer.
    local members, owners, shared = {}, {}, {}
    for i = 1, n do
      if is_shared[i] then
        shared[#shared + 1] = all[i]
      else
        members[#members + 1] = all[i]
        owners[#members] = got[i]
      end
    end
    if #members == 0 then return '', false, {{}, {}, {}}, shared end

    local found, seen = {}, {}
    for _, owner in ipairs(owners) do
      if owner and not seen[owner] then
        seen[owner] = true
        found[#found + 1] = owner
      end
    end
    local head_fresh = not owners[1]
    -- the event's group: customers named by its identifiers, strongest first, as far
    -- as they may merge (state/store.py "Attribution")
    local counts, accepted, in_group, pending = {}, {}, {}, {}
    if head_fresh then counts[member_type(members[1])] = 1 end
    for index, cid in ipairs(found) do
      local c = info(cid)
      local over = {}
      if head_fresh or #accepted > 0 then
        over = over_limits(counts, c)
        if #over == 0 and #accepted > 0 then
          over = weak_link(accepted, in_group, c, members, owners)
        end
      end
      if #over > 0 then
        local linking = {}
        for i = 1, #members do
          if in_group[owners[i]] or owners[i] == cid or (i == 1 and head_fresh) then
            linking[#linking + 1] = members[i]
          end
        end
        pending[#pending + 1] = {cid, over, linking}
      else
        accepted[#accepted + 1] = c
        in_group[cid] = true
        if index < #found then  -- the group's counts only matter to the customers after it
          for id_type, count in pairs(c.counts) do
            counts[id_type] = (counts[id_type] or 0) + count
          end
        end
      end
    end

    local target, created, known = nil, false, nil
    local merged, refused = {}, {}
    if #accepted > 0 then
      table.sort(accepted, survivor_before)
      local s = accepted[1]
      target, known = s.id, s
      for k = 2, #accepted do
        local m = accepted[k]
        local linking = {}
        for i = 1, #members do
          if owners[i] == s.id or owners[i] == m.id then linking[#linking + 1] = members[i] end
        end
        fold(m, s)
        merged[#merged + 1] = {s.id, m.id, linking}
      end
    else
      target, created = create(new_id)
    end
    for _, p in ipairs(pending) do
      local unlinked = {}
      for i = 1, #members do
        if owners[i] == p[1] then unlinked[#unlinked + 1] = members[i] end
      end
      refused[#refused + 1] = {target, p[1], p[2], p[3], unlinked}
      claim(target, p[1], unlinked, time_ms)
    end
    local limited = attach(target, created, members, owners, event_id, time_ms, known)
    return target, created, {merged, refused, limited}, shared
  end

  -- The recorded outcomes (state/outcomes.py): each request's reply with the wall-clock
  -- ms it was recorded at, under its event id in the OUTCOMES buckets (profile.lua,
  -- "Wall-clock logs"). One HMGET per bucket reads every record the batch may need; one
  -- recorded before the horizon has expired and counts as none. Records made or
  -- changed by the batch are kept here and written once at the end.
  local retention = policy.retention or 0
  local records, changed, times, where = {}, {}, {}, {}
  local now, horizon = nil, 0
  if retention > 0 then
    now = clock(ARGV[4], retention)
    horizon = now.ms - retention
    local event_ids, listed = {}, {}
    local at = FIRST_REQUEST
    while at <= #ARGV do
      if not listed[ARGV[at]] then
        listed[ARGV[at]] = true
        event_ids[#event_ids + 1] = ARGV[at]
      end
      at = request_end(at)
    end
    for event_id, record in pairs(bucket_read(OUTCOMES, event_ids, now)) do
      if record[1] >= horizon then
        records[event_id] = record[2]
        where[event_id] = record
      end
    end
  end

  local function resolve(at)
    local event_id, time_ms = ARGV[at], ARGV[at + 1]
    local recorded = records[event_id]
    if recorded then
      local again = recorded_reply(recorded)
      if again then
        if again ~= recorded then
          records[event_id] = again
          changed[event_id] = true
        end
        return again
      end
      -- its customer was erased: walked afresh, the record keeps its time
    end
    local target, created, entries, shared = walk(at)
    -- a customer created just now has no profile yet
    local optout = ''
    if target ~= '' and not created then optout = optout_of(target) end
    local out = reply(target, created, entries, optout, shared)
    if target ~= '' then record(target, at) end
    if retention > 0 then
      if not recorded then times[event_id] = true end  -- new, or expired: recorded now
      records[event_id] = out
      changed[event_id] = true
    end
    return out
  end

  local out = {}
  local at = FIRST_REQUEST
  while at <= #ARGV do
    out[#out + 1] = resolve(at)
    at = request_end(at)
  end
  if retention > 0 then
    local rows = {}
    for event_id in pairs(changed) do
      if times[event_id] then
        rows[#rows + 1] = {event_id, records[event_id], now.ms, now.bucket}
      else  -- changed in place: it keeps its time (and bucket)
        local was = where[event_id]
        rows[#rows + 1] = {event_id, records[event_id], was[1], was[3]}
      end
    end
    bucket_write(OUTCOMES, rows, now)
  end
  return out
end

local function validate(policy)
  if type(policy) ~= 'table' or type(policy.priority) ~= 'table'
      or type(policy.limits) ~= 'table' or type(policy.default_limit) ~= 'number' then
    return 'the policy needs priority, limits and default_limit'
  end
  if policy.retention ~= nil and type(policy.retention) ~= 'number' then
    return 'the policy retention must be a number'
  end
  if ARGV[4] == nil or (ARGV[4] ~= '' and not tonumber(ARGV[4])) then
    return 'resolve needs the wall-clock ms (or an empty string) after the policy'
  end
  if policy.shared ~= nil and type(policy.shared) ~= 'table' then
    return 'the policy shared limits must be a table'
  end
  local at = FIRST_REQUEST
  while at <= #ARGV do
    local n = tonumber(ARGV[at + 3] or '')
    local k = n and tonumber(ARGV[at + 4 + n] or '')
    if not n or n < 1 or n > MAX_IDENTIFIERS or n ~= math.floor(n)
        or not k or k < 0 or k ~= math.floor(k) or at + 4 + n + 2 * k > #ARGV then
      return 'a request is event_id, event_time_ms, new_id, n (1 to '
        .. MAX_IDENTIFIERS .. '), n members, k, then k consent purpose/granted pairs'
    end
    if not tonumber(ARGV[at + 1]) then return 'event_time_ms must be a number' end
    for i = at + 4, at + 3 + n do
      if not string.find(ARGV[i], ':', 2, true) then
        return 'identifier members are "type:value" strings'
      end
    end
    for i = at + 5 + n, at + 4 + n + 2 * k, 2 do
      if ARGV[i + 1] ~= '0' and ARGV[i + 1] ~= '1' then
        return "a consent change is a purpose and '1' (granted) or '0' (withdrawn)"
      end
    end
    REQUEST_END[at], REQUEST_N[at] = at + 5 + n + 2 * k, n
    at = REQUEST_END[at]
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
  -- marks made before now name an earlier customer of these ids (profile.lua)
  local retention = tonumber(ARGV[4] or '0') or 0
  if retention > 0 then
    local now = wall_ms(ARGV[5])
    local scored = {now, cid}
    for _, alias in ipairs(aliases) do
      scored[#scored + 1] = now
      scored[#scored + 1] = alias
    end
    call_chunked('ZADD', P .. 'erased', nil, scored, 2)
    prune_log(nil, P .. 'erased', now - retention, prune_budget(#scored / 2))
  end
  return {cid, 1, members, aliases}
elseif OP == 'profile' then
  -- ARGV[3..8]: interval ms, publish (0/1), recent limit, idempotence window ms,
  -- retention ms (applied-event marks), wall-clock ms ('': TIME); ARGV[9] k, then k
  -- customer id / identifier version pairs (the identifiers the caller holds); then
  -- the deltas (state/lua/profile.lua). Returns the profiles due for publication
  -- (read_profiles).
  local batch = {interval = tonumber(ARGV[3]), publish = ARGV[4] == '1',
                 recent = tonumber(ARGV[5]), window = tonumber(ARGV[6]),
                 retention = tonumber(ARGV[7]), now = ARGV[8]}
  if not (batch.interval and batch.recent and batch.window and batch.retention
          and batch.now and (batch.now == '' or tonumber(batch.now))) then
    return redis.error_reply(
      'profile needs interval, publish, recent, window, retention and now first')
  end
  local k = tonumber(ARGV[9] or '')
  if not k or k < 0 or k ~= math.floor(k) or 9 + 2 * k > #ARGV then
    return redis.error_reply('profile needs k, then k customer id / version pairs')
  end
  local known = {}
  for i = 10, 9 + 2 * k, 2 do known[ARGV[i]] = ARGV[i + 1] end
  local first = 10 + 2 * k
  local problem = check_deltas(first)
  if problem then return redis.error_reply(problem) end
  local function live(cid) return redis.call('EXISTS', cust_key(cid)) == 1 end
  local due, tables = apply_profiles(P, batch, first, canonical, live, alias_key)
  return read_profiles(due, tables, known)
elseif OP == 'profile_get' then
  local cid = canonical(ARG)
  -- a hash of resolve's consent record alone is no profile yet (no event applied)
  if redis.call('HEXISTS', P .. 'prof:' .. cid, 'v') == 0 then return false end
  return read_profiles({cid})[1]
elseif OP == 'flush' then
  local ready = redis.call('ZRANGE', P .. 'prof:pending', 0, -1)
  redis.call('DEL', P .. 'prof:pending')
  return read_profiles(ready)
end
return redis.error_reply('unknown operation ' .. tostring(OP))
