--[[
leader_lock.lua: take or renew a leader lock with an expiry (one holder at a time).

KEYS[1]  lock key (string; value = holder token)
ARGV[1]  holder token (unique per process)
ARGV[2]  time to live in milliseconds (integer > 0)

Replies
  1  the caller holds the lock now (taken, or renewed because it already held it)
  0  another holder has it; nothing changed
]]
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
