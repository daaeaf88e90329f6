-- Households in one atomic call per batch, item after item in lane order: mirrors
-- state/households.py (MemoryHouseholdStore) and state/household_figures.py step for
-- step; keep them in sync.
--
-- ARGV[1] key prefix P, ARGV[2] cjson policy {limits = {type: n}, default_limit, kept,
-- min_members}, ARGV[3] wall-clock ms now, ARGV[4] retention ms of the answers (0: not
-- recorded), ARGV[5] number of items, then per item: event id ('' not recorded),
-- customer id ('' none), number of changes, then per change: kind ('link' / 'merge' /
-- 'erase'), customer id, survivor id ('' but for a merge), n, n evidence members
-- ("type:value", stored form, from state/household_rules.py), then the link's figures
-- (8 values, stamp '' for none): stamp, ms, amount cents, order (0/1), nps, churn,
-- case id, case value ('1' open / '0' closed), '' unknown.
-- Returns a cjson object {published = [hid...], gone = [hid...], versions = {hid: n},
-- households = {hid: [types, [[cid, ltv_c, orders, nps, churn, open, last_ms]...]]},
-- contexts = [view text per item]} (state/household_figures.py HouseholdView.text).
--
-- Keys (hash tags: one slot per household, per evidence value, per customer):
--   P hh:e:{<evidence>}       set     customers presenting it
--   P hh:e:{<evidence>}:over  string  '1': over its limit for good
--   P hh:c:{<customer>}       set     the customer's evidence
--   P hh:c:{<customer>}:of    string  the customer's household id
--   P hh:c:{<customer>}:f     hash    the customer's figures (household_figures.py)
--   P hh:c:{<customer>}:to    string  the survivor it was merged into
--   P hh:c:{<customer>}:x     string  '1': erased, never linked again
--   P hh:{<household>}        set     its members
--   P hh:{<household>}:types  string  cjson list of its linking evidence types
--   P hh:{<household>}:a      hash    its members' totals (household_figures.py TOTALS)
--   P hh:{<household>}:v      string  publications so far (kept: a re-formed household
--                                     continues its count, so consumers keep the order)
--   P hh:ids                  set     every household id (listing)
--   P hh:o:<bucket>           hash    event id -> '<wall ms>|<view text>' (answers; a
--                                     bucket per retention, expiring two later)
-- Nothing outside hh: is read: no profile, no identity key.

local P = ARGV[1]
local policy = cjson.decode(ARGV[2])
local now, retention = tonumber(ARGV[3]), tonumber(ARGV[4])
local n_items = tonumber(ARGV[5])

local function ev_key(e) return P .. 'hh:e:{' .. e .. '}' end
local function over_key(e) return P .. 'hh:e:{' .. e .. '}:over' end
local function cev_key(c) return P .. 'hh:c:{' .. c .. '}' end
local function of_key(c) return P .. 'hh:c:{' .. c .. '}:of' end
local function fig_key(c) return P .. 'hh:c:{' .. c .. '}:f' end
local function to_key(c) return P .. 'hh:c:{' .. c .. '}:to' end
local function erased_key(c) return P .. 'hh:c:{' .. c .. '}:x' end
local function members_key(h) return P .. 'hh:{' .. h .. '}' end
local function types_key(h) return P .. 'hh:{' .. h .. '}:types' end
local function totals_key(h) return P .. 'hh:{' .. h .. '}:a' end
local function version_key(h) return P .. 'hh:{' .. h .. '}:v' end

local function type_of(e) return string.match(e, '^([^:]*)') end
local function limit_of(e)
  return tonumber(policy.limits[type_of(e)] or policy.default_limit)
end

-- read once per batch: merges and erases below keep these up to date
local canon, gone_ids = {}, {}
local function canonical(given)
  local known = canon[given]
  if known then return known end
  local c = given
  for _ = 1, 64 do
    local survivor = redis.call('GET', to_key(c))
    if not survivor then break end
    c = survivor
  end
  canon[given] = c
  return c
end
local function erased(c)
  local known = gone_ids[c]
  if known == nil then
    known = redis.call('EXISTS', erased_key(c)) == 1
    gone_ids[c] = known
  end
  return known
end

local function add_sorted(into, items)
  table.sort(items)
  for _, x in ipairs(items) do into.add(x) end
end

-- an insertion-ordered set
local function ordered()
  local self = {list = {}, has = {}}
  function self.add(x)
    if not self.has[x] then
      self.has[x] = true
      self.list[#self.list + 1] = x
    end
  end
  return self
end

-- figures (state/household_figures.py) ---------------------------------------------

local function contribution(c)
  local f = redis.call('HMGET', fig_key(c), 'ltv', 'orders', 'nps', 'open')
  return {tonumber(f[1] or '0'), tonumber(f[2] or '0'), f[3] and tonumber(f[3]) or false,
          tonumber(f[4] or '0')}
end

-- an integer as Redis reads one (a Lua -0 would print as '-0')
local function int(x)
  if x == 0 then return '0' end
  return string.format('%d', x)
end

local function add_to_totals(h, c, sign)
  local key = totals_key(h)
  if c[1] ~= 0 then redis.call('HINCRBY', key, 'ltv', int(sign * c[1])) end
  if c[2] ~= 0 then redis.call('HINCRBY', key, 'orders', int(sign * c[2])) end
  if c[3] then
    if c[3] ~= 0 then redis.call('HINCRBY', key, 'nps_sum', int(sign * c[3])) end
    redis.call('HINCRBY', key, 'nps_n', int(sign))
    if c[3] <= 6 then redis.call('HINCRBY', key, 'det', int(sign)) end
  end
  if c[4] ~= 0 then redis.call('HINCRBY', key, 'open', int(sign * c[4])) end
end

-- the totals moved by one member's change (only the fields that move)
local function move_totals(h, before, after)
  local key = totals_key(h)
  local function by(name, d) if d ~= 0 then redis.call('HINCRBY', key, name, int(d)) end end
  local b, a = before[3], after[3]
  by('ltv', after[1] - before[1])
  by('orders', after[2] - before[2])
  by('nps_sum', (a or 0) - (b or 0))
  by('nps_n', (a and 1 or 0) - (b and 1 or 0))
  by('det', ((a and a <= 6) and 1 or 0) - ((b and b <= 6) and 1 or 0))
  by('open', after[4] - before[4])
end

local function recompute_totals(h)
  redis.call('DEL', totals_key(h))
  for _, c in ipairs(redis.call('SMEMBERS', members_key(h))) do
    add_to_totals(h, contribution(c), 1)
  end
end

local function latest(fk, name, st, value)
  local current = redis.call('HGET', fk, name .. '@')
  if current and current >= st then return false end
  redis.call('HSET', fk, name .. '@', st, name, value)
  return true
end

-- one read, one write; returns the member's contribution before and after
local function fold_figures(c, f)
  local fk = fig_key(c)
  local case = f.case_id ~= '' and ('case:' .. f.case_id) or 'case:'
  local r = redis.call('HMGET', fk, 'ltv', 'orders', 'nps', 'nps@', 'churn@', 'last', 'open',
                       case, case .. '@')
  local ltv, orders, open = tonumber(r[1] or '0'), tonumber(r[2] or '0'), tonumber(r[7] or '0')
  local before = {ltv, orders, r[3] and tonumber(r[3]) or false, open}
  local set = {}
  if f.amount ~= 0 then
    ltv = ltv + f.amount
    set[#set + 1] = 'ltv'; set[#set + 1] = int(ltv)
  end
  if f.order then
    orders = orders + 1
    set[#set + 1] = 'orders'; set[#set + 1] = int(orders)
  end
  local nps = before[3]
  if f.nps ~= '' and not (r[4] and r[4] >= f.stamp) then
    nps = tonumber(f.nps)
    set[#set + 1] = 'nps'; set[#set + 1] = f.nps
    set[#set + 1] = 'nps@'; set[#set + 1] = f.stamp
  end
  if f.churn ~= '' and not (r[5] and r[5] >= f.stamp) then
    set[#set + 1] = 'churn'; set[#set + 1] = f.churn
    set[#set + 1] = 'churn@'; set[#set + 1] = f.stamp
  end
  if f.case_id ~= '' and not (r[9] and r[9] >= f.stamp) then
    local by = (f.case_value == '1' and 1 or 0) - (r[8] == '1' and 1 or 0)
    set[#set + 1] = case; set[#set + 1] = f.case_value
    set[#set + 1] = case .. '@'; set[#set + 1] = f.stamp
    if by ~= 0 then
      open = open + by
      set[#set + 1] = 'open'; set[#set + 1] = int(open)
    end
  end
  if tonumber(f.ms) > tonumber(r[6] or '0') then
    set[#set + 1] = 'last'; set[#set + 1] = f.ms
  end
  if #set > 0 then redis.call('HSET', fk, unpack(set)) end
  return before, {ltv, orders, nps, open}
end

local function merge_figures(dst, src)
  local flat = redis.call('HGETALL', fig_key(src))
  if #flat == 0 then return end
  local s = {}
  for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
  local dk = fig_key(dst)
  if s.ltv and s.ltv ~= '0' then redis.call('HINCRBY', dk, 'ltv', s.ltv) end
  if s.orders and s.orders ~= '0' then redis.call('HINCRBY', dk, 'orders', s.orders) end
  local names = {}
  for name in pairs(s) do
    if string.sub(name, -1) == '@' then names[#names + 1] = name end
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local field = string.sub(name, 1, -2)
    local was = redis.call('HGET', dk, field) == '1'
    if latest(dk, field, s[name], s[field]) and string.sub(field, 1, 5) == 'case:' then
      local by = (s[field] == '1' and 1 or 0) - (was and 1 or 0)
      if by ~= 0 then redis.call('HINCRBY', dk, 'open', int(by)) end
    end
  end
  if tonumber(s.last or '0') > tonumber(redis.call('HGET', dk, 'last') or '0') then
    redis.call('HSET', dk, 'last', s.last)
  end
  redis.call('DEL', fig_key(src))
end

-- the household graph ---------------------------------------------------------------

local function link(c, evidence, affected)
  for _, e in ipairs(evidence) do
    if redis.call('SISMEMBER', cev_key(c), e) == 0 and redis.call('EXISTS', over_key(e)) == 0 then
      local limit = limit_of(e)
      redis.call('SADD', cev_key(c), e)
      redis.call('SADD', ev_key(e), c)
      affected.add(c)
      local n = redis.call('SCARD', ev_key(e))
      if n == limit + 1 then
        add_sorted(affected, redis.call('SMEMBERS', ev_key(e)))
      elseif n > limit + policy.kept then
        redis.call('SET', over_key(e), '1')
      end
    end
  end
end

local function unlink(c, affected)
  local gone = redis.call('SMEMBERS', cev_key(c))
  table.sort(gone)
  for _, e in ipairs(gone) do
    redis.call('SREM', ev_key(e), c)
    add_sorted(affected, redis.call('SMEMBERS', ev_key(e)))
  end
  redis.call('DEL', cev_key(c))
  affected.add(c)
  return gone
end

local function linking(e)
  if redis.call('EXISTS', over_key(e)) == 1 then return false end
  return redis.call('SCARD', ev_key(e)) <= limit_of(e)
end

local function component(start)
  local seen, stack, evidence, n_ev = {[start] = true}, {start}, {}, {}
  local members = {start}
  while #stack > 0 do
    local c = table.remove(stack)
    for _, e in ipairs(redis.call('SMEMBERS', cev_key(c))) do
      if not evidence[e] and linking(e) then
        evidence[e] = true
        n_ev[#n_ev + 1] = e
        for _, other in ipairs(redis.call('SMEMBERS', ev_key(e))) do
          if not seen[other] then
            seen[other] = true
            members[#members + 1] = other
            stack[#stack + 1] = other
          end
        end
      end
    end
  end
  table.sort(members)
  table.sort(n_ev)
  return members, n_ev
end

local function types_of(evidence)
  local seen, out = {}, {}
  for _, e in ipairs(evidence) do
    local t = type_of(e)
    if not seen[t] then
      seen[t] = true
      out[#out + 1] = t
    end
  end
  table.sort(out)
  return out
end

-- regroup the affected customers; returns the households moved and those gone
local function regroup(affected)
  local seeds = ordered()
  local old_ids = {}
  for _, c in ipairs(affected.list) do seeds.add(c) end
  for _, c in ipairs(affected.list) do
    local h = redis.call('GET', of_key(c))
    if h then add_sorted(seeds, redis.call('SMEMBERS', members_key(h))) end
  end
  for _, c in ipairs(seeds.list) do
    local h = redis.call('GET', of_key(c))
    if h then old_ids[#old_ids + 1] = h end
  end
  local changed = ordered()
  local done = {}
  for _, start in ipairs(seeds.list) do
    if not done[start] then
      local members, evidence = component(start)
      for _, c in ipairs(members) do done[c] = true end
      local h = false
      if #members >= policy.min_members then
        h = 'hh-' .. string.sub(redis.sha1hex(evidence[1]), 1, 24)
      end
      for _, c in ipairs(members) do
        local before = redis.call('GET', of_key(c))
        if before ~= h then
          if before then
            redis.call('SREM', members_key(before), c)
            changed.add(before)
          end
          if h then
            redis.call('SET', of_key(c), h)
            redis.call('SADD', members_key(h), c)
            changed.add(h)
          else
            redis.call('DEL', of_key(c))
          end
        end
      end
      if h then
        redis.call('SET', types_key(h), cjson.encode(types_of(evidence)))
        redis.call('SADD', P .. 'hh:ids', h)
      end
    end
  end
  local gone_set, gone = {}, {}
  local candidates = {}
  for _, h in ipairs(old_ids) do candidates[#candidates + 1] = h end
  for _, h in ipairs(changed.list) do candidates[#candidates + 1] = h end
  for _, h in ipairs(candidates) do
    if not gone_set[h] and redis.call('SCARD', members_key(h)) == 0 then
      gone_set[h] = true
      gone[#gone + 1] = h
    end
  end
  table.sort(gone)
  for _, h in ipairs(gone) do
    redis.call('DEL', members_key(h), types_key(h), totals_key(h))
    redis.call('SREM', P .. 'hh:ids', h)
  end
  return changed, gone_set, gone
end

-- one item ---------------------------------------------------------------------------

local batch_changed, batch_gone = ordered(), ordered()

local function structural(ch, affected, dirty)
  if ch.kind == 'link' then
    local c = canonical(ch.customer)
    if not erased(c) then link(c, ch.evidence, affected) end
    return
  end
  local c, s = ch.customer, ''
  if ch.kind == 'merge' then s = canonical(ch.survivor) else c = canonical(c) end
  if s == c then return end
  local h = redis.call('GET', of_key(c))
  if h then dirty[#dirty + 1] = h end
  local moved = unlink(c, affected)
  if ch.kind == 'erase' then
    redis.call('DEL', fig_key(c))
    redis.call('SET', erased_key(c), '1')
    gone_ids[c] = true
    return
  end
  redis.call('SET', to_key(c), s)
  canon = {}  -- ids that led to c lead to s now
  if erased(s) then
    redis.call('DEL', fig_key(c))
    return
  end
  merge_figures(s, c)
  local hs = redis.call('GET', of_key(s))
  if hs then dirty[#dirty + 1] = hs end
  link(s, moved, affected)
  affected.add(s)
end

local function settle(affected, dirty)
  if #affected.list == 0 and #dirty == 0 then return end
  local moved, gone_set, gone = ordered(), {}, {}
  if #affected.list > 0 then moved, gone_set, gone = regroup(affected) end
  for _, h in ipairs(gone) do batch_gone.add(h) end
  table.sort(dirty)
  for _, h in ipairs(dirty) do moved.add(h) end
  for _, h in ipairs(moved.list) do
    if not gone_set[h] and redis.call('EXISTS', members_key(h)) == 1 then
      recompute_totals(h)
      batch_changed.add(h)
    end
  end
end

local function fold(ch)
  local c = canonical(ch.customer)
  if erased(c) then return end
  local h = redis.call('GET', of_key(c))
  if ch.figures then
    local before, after = fold_figures(c, ch.figures)
    if h then move_totals(h, before, after) end
  end
  if h then batch_changed.add(h) end
end

local function view(c)
  if c == '' then return '' end
  local h = redis.call('GET', of_key(canonical(c)))
  if not h then return '' end
  local t = redis.call('HMGET', totals_key(h), 'ltv', 'orders', 'nps_sum', 'nps_n', 'det', 'open')
  local out = {h, tostring(redis.call('SCARD', members_key(h)))}
  for k = 1, 6 do out[#out + 1] = t[k] or '0' end
  return table.concat(out, ' ')
end

local bucket = retention > 0 and math.floor(now / retention) or 0
local expire_at = string.format('%d', (bucket + 2) * retention)
local function answers_key(b) return P .. 'hh:o:' .. string.format('%d', b) end
local function recorded(event_id)
  if event_id == '' or retention <= 0 then return nil end
  for _, b in ipairs({bucket, bucket - 1}) do
    local found = redis.call('HGET', answers_key(b), event_id)
    if found then
      local bar = string.find(found, '|', 1, true)
      if now - tonumber(string.sub(found, 1, bar - 1)) <= retention then
        return string.sub(found, bar + 1)
      end
    end
  end
  return nil
end

local contexts = {}
local answered = false
local at = 6
for i = 1, n_items do
  local event_id, customer, n = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  at = at + 3
  local changes = {}
  for k = 1, n do
    local ch = {kind = ARGV[at], customer = ARGV[at + 1], survivor = ARGV[at + 2]}
    local n_ev = tonumber(ARGV[at + 3])
    ch.evidence = {}
    for e = 1, n_ev do ch.evidence[e] = ARGV[at + 3 + e] end
    at = at + 4 + n_ev
    if ch.kind == 'link' then
      if ARGV[at] ~= '' then
        ch.figures = {stamp = ARGV[at], ms = ARGV[at + 1],
                      amount = tonumber(ARGV[at + 2]), order = ARGV[at + 3] == '1',
                      nps = ARGV[at + 4], churn = ARGV[at + 5], case_id = ARGV[at + 6],
                      case_value = ARGV[at + 7]}
      end
      at = at + 8
    end
    changes[k] = ch
  end
  local answer = recorded(event_id)
  if answer then  -- re-processed: nothing again, the first answer
    if customer ~= '' then
      local h = redis.call('GET', of_key(canonical(customer)))
      if h then batch_changed.add(h) end
    end
    contexts[i] = answer
  else
    local affected, dirty = ordered(), {}
    for _, ch in ipairs(changes) do structural(ch, affected, dirty) end
    settle(affected, dirty)
    for _, ch in ipairs(changes) do
      if ch.kind == 'link' then fold(ch) end
    end
    contexts[i] = view(customer)
    if event_id ~= '' and retention > 0 then
      redis.call('HSET', answers_key(bucket), event_id, ARGV[3] .. '|' .. contexts[i])
      answered = true
    end
  end
end

if answered then redis.call('PEXPIREAT', answers_key(bucket), expire_at) end

local function describe(h)
  local members = redis.call('SMEMBERS', members_key(h))
  table.sort(members)
  local rows = {}
  for k, c in ipairs(members) do
    local f = redis.call('HMGET', fig_key(c), 'ltv', 'orders', 'nps', 'churn', 'open', 'last')
    rows[k] = {c, f[1] or '0', f[2] or '0', f[3] or '', f[4] or '', f[5] or '0', f[6] or '0'}
  end
  return {cjson.decode(redis.call('GET', types_key(h)) or '[]'), rows}
end

local published, gone = {}, {}
for _, h in ipairs(batch_changed.list) do
  if redis.call('EXISTS', members_key(h)) == 1 then published[#published + 1] = h end
end
for _, h in ipairs(batch_gone.list) do
  if redis.call('EXISTS', members_key(h)) == 0 then gone[#gone + 1] = h end
end
table.sort(published)
table.sort(gone)
local versions, households = {}, {}
for _, h in ipairs(published) do
  versions[h] = redis.call('INCR', version_key(h))
  households[h] = describe(h)
end
for _, h in ipairs(gone) do versions[h] = redis.call('INCR', version_key(h)) end
return cjson.encode({published = published, gone = gone, versions = versions,
                     households = households, contexts = contexts})
