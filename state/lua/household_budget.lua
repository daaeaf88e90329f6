-- Households' daily budgets of sends, asks in order (state/households.py
-- MemoryHouseholdStore.spend). ARGV[1] key prefix P, ARGV[2] seconds to keep a day,
-- then per ask: household id, day, token (an NBA id), limit.
-- Key P hh:{<household>}:sent:<day>: a set of tokens (one slot per household).
-- Returns per ask 1 when the token fits (again: a re-processed decision gets its first
-- answer), else 0.
local P, keep = ARGV[1], tonumber(ARGV[2])
local out = {}
local at = 3
while at <= #ARGV do
  local key = P .. 'hh:{' .. ARGV[at] .. '}:sent:' .. ARGV[at + 1]
  local token, limit = ARGV[at + 2], tonumber(ARGV[at + 3])
  if redis.call('SISMEMBER', key, token) == 1 then
    out[#out + 1] = 1
  elseif redis.call('SCARD', key) >= limit then
    out[#out + 1] = 0
  else
    redis.call('SADD', key, token)
    redis.call('EXPIRE', key, keep)
    out[#out + 1] = 1
  end
  at = at + 4
end
return out
