--[[
index_update.lua: set an instrument's index price and its timestamp, and optionally its status.
Moves no money.

KEYS[1]  instrument hash            instrument:{id}
KEYS[2]  dirty set                  dirty (member i:<id>)
ARGV[1]  instrument id              integer >= 1
ARGV[2]  index price, cents         1 .. 100000; '' = keep the index (a status-only change)
ARGV[3]  timestamp of the price, ms must not be older than the stored index_ts (ignored with '')
ARGV[4]  status                     '' = unchanged, or open | halted | closed
ARGV[5]  price channel              price:{id}

Replies
  {'ok', 'instrument_id', i, 'index', I, 'index_ts', ts, 'status', st, 'skew', s,
   'mark', m, 'pseq', n}   after the update (numbers formatted with %d)
  {'rejected', code}  nothing changed. Codes: bad_args bad_price bad_status unknown_instrument
     instrument_bounds stale_tick (ARGV[3] older than index_ts)

Effects: HSET index, index_ts (and status), pseq + 1; SADD dirty i:<id>; PUBLISH ARGV[5] of
cmsgpack {type='PRICE_UPDATE', id, price=mark, index, skew, seq=pseq, ts=index_ts} with the mark
floor(I (S + s) / S), s clamped into [-S + ceil(S/I), S] as in position_open.lua (1 .. 2I cents).
Index <= 100000 cents keeps every trade product below 2^53. The skew may be past the cap or the
depth (closes are never capped): instrument_bounds only for a broken hash (depth not 1 .. 100000,
skew not an integer with |skew| <= 10^15, or, for a status-only change, a stored index not
1 .. 100000), so the index of such a market still moves.
]]
--- @include "base"
--- @include "amm"
--- @include "price"

local iid = int_arg(ARGV[1], 1, MAX_ID)
if not iid then return rej('bad_args') end
local new_index, ts = nil, nil
if ARGV[2] ~= '' then
  new_index = int_arg(ARGV[2], 1, MAX_PRICE)
  if not new_index then return rej('bad_price') end
  ts = int_arg(ARGV[3], 0, MAX_ID)
  if not ts then return rej('bad_args') end
end
local new_status = ARGV[4]
if new_status ~= '' and new_status ~= 'open' and new_status ~= 'halted'
    and new_status ~= 'closed' then
  return rej('bad_status')
end
if not new_index and new_status == '' then return rej('bad_args') end

local ins = redis.call('HMGET', KEYS[1], 'index', 'index_ts', 'skew', 'depth', 'status', 'pseq')
if not ins[1] then return rej('unknown_instrument') end
local index, index_ts = tonumber(ins[1]), tonumber(ins[2] or '0')
local skew, depth = tonumber(ins[3] or '0'), tonumber(ins[4] or '')
local pseq = tonumber(ins[6] or '0')
if not (index and index_ts and skew and depth and depth >= 1 and depth <= MAX_DEPTH
    and skew == math.floor(skew) and math.abs(skew) <= MAX_SKEW and pseq
    and (new_index or (index >= 1 and index <= MAX_PRICE))) then
  return rej('instrument_bounds')
end
if new_index then
  if ts < index_ts then return rej('stale_tick') end
  index, index_ts = new_index, ts
end
local status = ins[5] or 'open'
if new_status ~= '' then status = new_status end
pseq = pseq + 1

redis.call('HSET', KEYS[1], 'index', fmt(index), 'index_ts', fmt(index_ts), 'status', status,
  'pseq', fmt(pseq))
redis.call('SADD', KEYS[2], 'i:' .. fmt(iid))
local mark = mark_at(index, skew, depth)
publish_price(ARGV[5], iid, mark, index, skew, pseq, index_ts)
return {'ok', 'instrument_id', fmt(iid), 'index', fmt(index), 'index_ts', fmt(index_ts),
  'status', status, 'skew', fmt(skew), 'mark', fmt(mark), 'pseq', fmt(pseq)}
