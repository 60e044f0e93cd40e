--[[
rebuild_load.lua: bulk-load hot hashes during a rebuild from PostgreSQL, one chunk of rows per call.

The rows travel as one MessagePack argument and the hashes are written here, so the rebuild does
not pay a client round of command encoding and reply parsing per key (see docs/recovery.md).
The hash keys are built in the script from ARGV[2] (a bulk load; FTL runs on one Redis primary).

KEYS[1]  overall leaderboard        leaderboard:overall (mode 'wallets')
KEYS[2]  district leaderboard key   leaderboard:district: (mode 'wallets'; the district id is appended)
ARGV[1]  mode                       hashes | wallets | idempotency
ARGV[2]  key prefix of the hashes   e.g. position:, instrument:, wallet:, idem:
ARGV[3]  field names                MessagePack array of strings
ARGV[4]  rows                       MessagePack array of arrays of strings ('' for SQL NULL)

Modes (n = number of field names)
  hashes       row = {id, v1 .. vn}: HSET prefix..id f1 v1 .. fn vn
  wallets      row = {userId, v1 .. vn} with fields available locked equity seq district: HSET
               prefix..userId, and unless userId is 0: ZADD KEYS[1] equity userId, and when
               district is not '' ZADD KEYS[2]..district equity userId
  idempotency  row = {userId, key, hash, expireAtMs, v1 .. vn} with the fields of the trade's
               outbox entry: HSET prefix..userId..':'..key hash, reply, trade and PEXPIREAT;
               reply = cmsgpack {'ok', '0', 'mark', <price>, f1, v1, .., fn, vn}, the first
               reply as position_open.lua / position_close.lua store it

Replies
  the number of rows loaded
]]
local mode, prefix = ARGV[1], ARGV[2]
local names = cmsgpack.unpack(ARGV[3])
local rows = cmsgpack.unpack(ARGV[4])
local n = #names

local function pairs_of(row, first)
  local out = {}
  for i = 1, n do
    out[2 * i - 1] = names[i]
    out[2 * i] = row[first + i - 1]
  end
  return out
end

if mode == 'hashes' then
  for _, row in ipairs(rows) do
    redis.call('HSET', prefix .. row[1], unpack(pairs_of(row, 2)))
  end
elseif mode == 'wallets' then
  local equity_at, district_at
  for i = 1, n do
    if names[i] == 'equity' then equity_at = i + 1 end
    if names[i] == 'district' then district_at = i + 1 end
  end
  for _, row in ipairs(rows) do
    redis.call('HSET', prefix .. row[1], unpack(pairs_of(row, 2)))
    if row[1] ~= '0' then
      redis.call('ZADD', KEYS[1], row[equity_at], row[1])
      if row[district_at] ~= '' then
        redis.call('ZADD', KEYS[2] .. row[district_at], row[equity_at], row[1])
      end
    end
  end
elseif mode == 'idempotency' then
  local price_at
  for i = 1, n do
    if names[i] == 'price' then price_at = i + 4 end
  end
  for _, row in ipairs(rows) do
    local key = prefix .. row[1] .. ':' .. row[2]
    local reply = {'ok', '0', 'mark', row[price_at]}
    for i = 1, n do
      reply[4 + 2 * i - 1] = names[i]
      reply[4 + 2 * i] = row[4 + i]
    end
    redis.call('HSET', key, 'hash', row[3], 'reply', cmsgpack.pack(reply), 'trade', row[5])
    redis.call('PEXPIREAT', key, row[4])
  end
else
  return redis.error_reply('unknown mode ' .. tostring(mode))
end
return #rows
