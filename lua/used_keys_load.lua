--[[
used_keys_load.lua: fill a user's used-keys set (position_open.lua KEYS[12]) from PostgreSQL,
atomically, when the trade scripts found it missing ('no_used_keys').

KEYS[1]  the user's used keys       usedkeys:{userId}
KEYS[2]  boot marker                boot: the epoch of this Redis incarnation
ARGV[1]  epoch                      the boot marker's value the api read *before* it read the keys
                                    from PostgreSQL: that read then came after the rebuild's fence, so
                                    no write of an older incarnation can land after it
ARGV[2]  used keys TTL, ms          integer >= 1
ARGV[3..] key hashes                integers 0 .. 2^31-1 of every idempotency key PostgreSQL holds
                                    for the user (any number, none included)

The set always gets the member -1 (loaded), so a user with no keys has a set too. Members only
ever join (a set another loader or a trade filled meanwhile is a subset of the truth as well).

Replies
  {'ok', n}          the set exists now with n members
  {'recovering', ''} the boot marker is missing or no longer ARGV[1]: nothing changed (read the
                     marker and PostgreSQL again)
  {'bad_args', ''}   ARGV[2] or a hash is not such an integer; nothing changed
]]
local ttl = tonumber(ARGV[2])
if ttl == nil or ttl < 1 or ttl ~= math.floor(ttl) then return {'bad_args', ''} end
for i = 3, #ARGV do
  local h = tonumber(ARGV[i])
  if h == nil or h < 0 or h > 2147483647 or h ~= math.floor(h) then return {'bad_args', ''} end
end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'recovering', ''} end
redis.call('SADD', KEYS[1], '-1')
local chunk = 1000  -- unpack() has a limit on how many values it spreads
for i = 3, #ARGV, chunk do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + chunk - 1, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], ttl)
return {'ok', redis.call('SCARD', KEYS[1])}
