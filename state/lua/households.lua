-- Households next to the profiles, in one atomic call per batch: mirrors
-- state/households.py (MemoryHouseholdStore) step for step; keep them in sync.
--
-- ARGV[1] key prefix P, ARGV[2] cjson policy {limits = {type: n}, default_limit, kept,
-- min_members}, ARGV[3] number of changes, then per change: kind ('link' / 'merge' /
-- 'erase'), customer id, survivor id ('' but for a merge), n, then n evidence members
-- ("type:value", stored form, from state/household_rules.py); then the customer ids
-- whose household to return (excerpts).
-- Returns a cjson object {published = [hid...], gone = [hid...], versions = {hid: n},
-- households = {hid: [types, [[cid, ltv_c, orders, nps, churn, open, last_ms]...]]},
-- excerpts = [[cid, hid or '']]} (figures as strings, '' unknown).
--
-- Keys (hash tags: one slot per household, per evidence value, per customer):
--   P hh:e:{<evidence>}       set     customers presenting it
--   P hh:e:{<evidence>}:over  string  '1': over its limit for good
--   P hh:c:{<customer>}       set     the customer's evidence
--   P hh:c:{<customer>}:of    string  the customer's household id
--   P hh:{<household>}        set     its members
--   P hh:{<household>}:types  string  cjson list of its linking evidence types
--   P hh:{<household>}:v      string  publications so far (kept: a re-formed household
--                                     continues its count, so consumers keep the order)
--   P hh:ids                  set     every household id (listing)
-- Read, not written: P alias:<id> (state/lua/identity.lua, the survivor of a merged id)
-- and P prof:<id> (state/lua/profile.lua, the member's profile hash).

local P = ARGV[1]
local policy = cjson.decode(ARGV[2])
local n_changes = tonumber(ARGV[3])

local function ev_key(e) return P .. 'hh:e:{' .. e .. '}' end
local function over_key(e) return P .. 'hh:e:{' .. e .. '}:over' end
local function cev_key(c) return P .. 'hh:c:{' .. c .. '}' end
local function of_key(c) return P .. 'hh:c:{' .. c .. '}:of' end
local function members_key(h) return P .. 'hh:{' .. h .. '}' end
local function types_key(h) return P .. 'hh:{' .. h .. '}:types' end
local function version_key(h) return P .. 'hh:{' .. h .. '}:v' end

local function type_of(e) return string.match(e, '^([^:]*)') end
local function limit_of(e)
  return tonumber(policy.limits[type_of(e)] or policy.default_limit)
end

local function canonical(c)
  local survivor = redis.call('GET', P .. 'alias:' .. c)
  if survivor then return survivor end
  return c
end
local function live(c) return redis.call('HEXISTS', P .. 'prof:' .. c, 'v') == 1 end

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
  function self.remove(x)
    if self.has[x] then
      self.has[x] = nil
      local kept = {}
      for _, y in ipairs(self.list) do if y ~= x then kept[#kept + 1] = y end end
      self.list = kept
    end
  end
  return self
end

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
    redis.call('DEL', members_key(h), types_key(h))
    redis.call('SREM', P .. 'hh:ids', h)
    changed.remove(h)
  end
  return changed, gone
end

local function figures(c)
  local flat = redis.call('HGETALL', P .. 'prof:' .. c)
  local h, open = {}, 0
  for i = 1, #flat, 2 do
    local k, v = flat[i], flat[i + 1]
    h[k] = v
    if v == '1' and string.sub(k, 1, 5) == 'case:' and string.sub(k, -1) ~= '@' then
      open = open + 1
    end
  end
  return {c, h.ltv_c or '0', h.orders or '0', h.nps or '', h.churn or '', tostring(open),
          h.last_ms or '0'}
end

local function describe(h, into)
  if into[h] then return end
  local members = redis.call('SMEMBERS', members_key(h))
  table.sort(members)
  local rows = {}
  for k, c in ipairs(members) do rows[k] = figures(c) end
  into[h] = {cjson.decode(redis.call('GET', types_key(h)) or '[]'), rows}
end

local affected, touched = ordered(), ordered()
local at = 4
for _ = 1, n_changes do
  local kind, given, survivor, n = ARGV[at], ARGV[at + 1], ARGV[at + 2], tonumber(ARGV[at + 3])
  local evidence = {}
  for k = 1, n do evidence[k] = ARGV[at + 3 + k] end
  at = at + 4 + n
  local c = canonical(given)
  if kind == 'link' then
    if live(c) then
      touched.add(c)
      link(c, evidence, affected)
    end
  elseif kind == 'merge' then
    local s = canonical(survivor)
    if s ~= given then
      local moved = unlink(given, affected)
      if live(s) then
        touched.add(s)
        link(s, moved, affected)
        affected.add(s)
      end
    end
  else
    unlink(c, affected)
  end
end

local changed, gone = regroup(affected)
for _, c in ipairs(touched.list) do
  local h = redis.call('GET', of_key(c))
  if h then changed.add(h) end
end
local published = {}
for _, h in ipairs(changed.list) do published[#published + 1] = h end
table.sort(published)
local versions, households = {}, {}
for _, h in ipairs(published) do
  versions[h] = redis.call('INCR', version_key(h))
  describe(h, households)
end
for _, h in ipairs(gone) do versions[h] = redis.call('INCR', version_key(h)) end
local excerpts = {}
while at <= #ARGV do
  local c = canonical(ARGV[at])
  local h = redis.call('GET', of_key(c))
  if h then describe(h, households) end
  excerpts[#excerpts + 1] = {ARGV[at], h or ''}
  at = at + 1
end
return cjson.encode({published = published, gone = gone, versions = versions,
                     households = households, excerpts = excerpts})
