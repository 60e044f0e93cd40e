--[[
hash_load.lua: put a hot hash into Redis from its durable row, unless Redis already has it.

KEYS[1]  the hash (e.g. wallet:{userId}, instrument:{id})
ARGV     field, value, field, value, ... (the row as PostgreSQL has it)

Replies
  1  the hash was missing and is now loaded
  0  it existed already (Redis is ahead of PostgreSQL); nothing changed
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
