-- idempotency.lua (after base.lua): the idempotency record and the user's used-keys set of
-- position_open.lua and position_close.lua (their headers: KEYS[4], KEYS[12], key_used,
-- no_used_keys; docs/ledger.md).

-- The first reply of this key (marked as a replay), a 'conflict' rejection for another body, or
-- nil when Redis has no record of the key.
local function first_reply(idem_key, request_hash)
  local idem = redis.call('HMGET', idem_key, 'hash', 'reply')
  if not idem[1] then return nil end
  if idem[1] ~= request_hash then return rej('conflict') end
  local first = cmsgpack.unpack(idem[2])
  first[2] = '1'
  return first
end

-- A key with no record may still be held by a recorded trade (its record expired, or Redis was
-- lost since): the used-keys set says when PostgreSQL must be asked first ('key_used'; a hash
-- collision only costs that question). Returns a rejection code, or nil to go on.
local function used_key_check(set_key, key_hash, checked)
  local used = redis.call('SISMEMBER', set_key, key_hash)
  if used == 1 and checked ~= '1' then return 'key_used' end
  if used == 0 and redis.call('EXISTS', set_key) == 0 then return 'no_used_keys' end
  return nil
end

-- After an accepted trade: its key joins the used-keys set, its reply is the key's record.
local function remember(idem_key, request_hash, reply, trade_id, ttl, set_key, key_hash, used_ttl)
  redis.call('SADD', set_key, key_hash)
  redis.call('PEXPIRE', set_key, used_ttl)
  redis.call('HSET', idem_key, 'hash', request_hash, 'reply', cmsgpack.pack(reply), 'trade', trade_id)
  redis.call('PEXPIRE', idem_key, ttl)
end
