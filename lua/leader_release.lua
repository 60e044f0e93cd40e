--[[
leader_release.lua: give up a leader lock, only if the caller still holds it.

KEYS[1]  lock key
ARGV[1]  holder token

Replies
  1  released
  0  not held by this holder (expired or taken over); nothing changed
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
