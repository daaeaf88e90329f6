-- A household's daily budget of sends (state/households.py MemoryHouseholdStore.spend).
-- KEYS[1] P hh:{<household>}:sent:<day> (a set of tokens, one slot per household),
-- ARGV[1] the token (an NBA id), ARGV[2] the limit, ARGV[3] seconds to keep the day.
-- Returns 1 when the token fits (again: a re-processed decision gets its first answer).
local key, token, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
if redis.call('SISMEMBER', key, token) == 1 then return 1 end
if redis.call('SCARD', key) >= limit then return 0 end
redis.call('SADD', key, token)
redis.call('EXPIRE', key, tonumber(ARGV[3]))
return 1
