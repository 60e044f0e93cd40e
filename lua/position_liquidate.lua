--[[
position_liquidate.lua: close a whole position whose equity fell below the maintenance margin.

KEYS[1]  instrument hash            instrument:{id} (the position's instrument)
KEYS[2]  the owner's wallet hash    wallet:{userId}
KEYS[3]  the house wallet hash      wallet:0
KEYS[4]  id counters hash           seq (HINCRBY field trade)
KEYS[5]  position hash              position:{id}
KEYS[6]  trade outbox stream        outbox:trades
KEYS[7]  dirty set                  dirty
KEYS[8]  overall leaderboard        leaderboard:overall
KEYS[9]  district leaderboard       leaderboard:district:{d} (any key when ARGV[5] is '')
KEYS[10] boot marker                boot: the epoch of this Redis incarnation (set by the rebuild; missing while Redis is
                                    rebuilt from PostgreSQL: reply 'recovering'). Every trade carries it.
ARGV[1]  owner's user id            integer >= 1; must own the position
ARGV[2]  position id                integer >= 1
ARGV[3]  instrument id              must be the position's instrument
ARGV[4]  now, ms since the epoch
ARGV[5]  the owner's district id    '' = none; must equal the wallet's field district
ARGV[6]  fee, bps                   0 .. 1000 (the instrument's field fee_bps overrides it)
ARGV[7]  max index age, ms          0 = no staleness check
ARGV[8]  maintenance margin, bps    0 .. 10000
ARGV[9]  price channel              price:{id}

Replies (arrays of strings, numbers formatted with %d)
  {'ok', '0', 'mark', m, field, value, ...}  as position_close.lua: the trade as XADDed, kind
     'liquidation', pos_status 'liquidated', pos_qty 0.
  {'rejected', code}  nothing changed. Codes: recovering bad_user bad_args not_found not_owner not_open
     wrong_instrument unknown_instrument instrument_bounds halted instrument_closed stale_index
     no_wallet district_mismatch not_liquidatable (never skew_cap)

No idempotency key: a position is liquidated once (then not_open). Liquidatable when, at the
mark m = floor(I (S + s) / S) before the trade (s clamped as in position_open.lua: m is 1 .. 2I),
(M + uPnL) * 10^4 < mm_bps * qty * m, with uPnL = qty m - N_e (long) or N_e - qty m (short). The
position is then closed whole at the AMM fill price exactly as position_close.lua does (no
slippage check; the fee applies; payout = max(M + PnL - fee, 0); the house keeps the rest). The
trade has an empty idempotency_key and request_hash.

Skew and bounds as in position_close.lua: a liquidation is never refused for the skew cap, may
take |skew| beyond the cap and the depth, fills a sell at 1 cent a unit at least (N >= qty) and a
buy at 2I at most; instrument_bounds only for a broken hash (the cap is not read). Every integer
intermediate stays below 2^53: X <= 4 I S qty <= 4 * 10^15; qty m <= 2 * 10^10 and M <= N_e <=
2 * 10^10 (from the open), so (M + uPnL) * 10^4 and mm_bps qty m stay below 10^15.

Effects: as position_close.lua, with kind 'liquidation' and position status 'liquidated'.
]]
local function int_arg(v, lo, hi)
  local n = tonumber(v)
  if n == nil or not (n >= lo and n <= hi) or n ~= math.floor(n) then return nil end
  return n
end
local function fmt(x) return string.format('%d', x) end
local function floor_div(a, b) return math.floor(a / b) end
local function ceil_div(a, b) return -math.floor(-a / b) end
local function rej(code) return {'rejected', code} end
local MAX_ID = 9007199254740991
local MAX_SKEW = 1000000000000000  -- 10^15: |skew| beyond it is a broken hash
local function clamp(x, lo, hi)
  if x < lo then return lo elseif x > hi then return hi end
  return x
end
-- The mark curve I (S + x) / S is read at the skew x clamped into [lo, S], lo = -S + ceil(S/I)
-- the lowest skew whose mark is >= 1 cent (ftl/trading/amm.py: low_skew, mark, fill_num).
local function low_skew(index, depth) return ceil_div(depth, index) - depth end
local function mark_at(index, skew, depth)
  return floor_div(index * (depth + clamp(skew, low_skew(index, depth), depth)), depth)
end
-- 2S x the exact cost of q units from skew s: 2S x the integral of the clamped mark over the path
-- (= |q| I (2S + 2s + q) when the path stays within [lo, S]); each unit adds 2S .. 4IS.
local function fill_num(index, skew, depth, q)
  local lo = low_skew(index, depth)
  local a, b = skew, skew + q
  if q < 0 then a, b = b, a end
  local ca, cb = clamp(a, lo, depth), clamp(b, lo, depth)
  local below = math.min(b, lo) - math.min(a, lo)
  local above = math.max(b, depth) - math.max(a, depth)
  return index * (2 * (depth + lo) * below + (cb - ca) * (2 * depth + ca + cb) + 4 * depth * above)
end

local epoch = redis.call('GET', KEYS[10])  -- this Redis incarnation (fences its writes)
if not epoch then return rej('recovering') end
local user = int_arg(ARGV[1], 1, MAX_ID)
if not user then return rej('bad_user') end
local pid = int_arg(ARGV[2], 1, MAX_ID)
local iid = int_arg(ARGV[3], 1, MAX_ID)
local now = int_arg(ARGV[4], 0, MAX_ID)
local fee_default = int_arg(ARGV[6], 0, 1000)
local max_age = int_arg(ARGV[7], 0, MAX_ID)
local mm_bps = int_arg(ARGV[8], 0, 10000)
if not (pid and iid and now and fee_default and max_age and mm_bps) then
  return rej('bad_args')
end

local p = redis.call('HMGET', KEYS[5], 'user', 'instrument', 'side', 'qty', 'entry_notional',
  'margin', 'leverage', 'status', 'realised_pnl', 'entry_price', 'opened_ts')
if not p[1] then return rej('not_found') end
if tonumber(p[1]) ~= user then return rej('not_owner') end
if p[8] ~= 'open' then return rej('not_open') end
if tonumber(p[2]) ~= iid then return rej('wrong_instrument') end
local side, qty = p[3], tonumber(p[4])
local entry_notional, margin, lev = tonumber(p[5]), tonumber(p[6]), tonumber(p[7])
local pos_pnl = tonumber(p[9] or '0')

local ins = redis.call('HMGET', KEYS[1], 'index', 'index_ts', 'skew', 'depth', 'status',
  'long', 'short', 'pseq', 'fee_bps')
if not ins[1] then return rej('unknown_instrument') end
local index, index_ts = tonumber(ins[1]), tonumber(ins[2] or '0')
local skew, depth = tonumber(ins[3] or '0'), tonumber(ins[4] or '')
local long_units, short_units = tonumber(ins[6] or '0'), tonumber(ins[7] or '0')
local pseq = tonumber(ins[8] or '0')
local fee_bps = fee_default
if ins[9] and ins[9] ~= '' then fee_bps = int_arg(ins[9], 0, 1000) end
-- No cap and no |skew| < depth here: a liquidation is never refused for the skew (only a broken hash).
if not (index and index >= 1 and index <= 100000 and depth and depth >= 1 and depth <= 100000
    and skew and skew == math.floor(skew) and math.abs(skew) <= MAX_SKEW and index_ts
    and long_units and short_units and pseq and fee_bps) then
  return rej('instrument_bounds')
end
local status = ins[5] or 'open'
if status == 'halted' then return rej('halted') end
if status ~= 'open' then return rej('instrument_closed') end
if max_age > 0 and now - index_ts > max_age then return rej('stale_index') end

local w = redis.call('HMGET', KEYS[2], 'available', 'locked', 'district', 'seq')
if not w[1] then return rej('no_wallet') end
local available, locked = tonumber(w[1]), tonumber(w[2] or '0')
if (w[3] or '') ~= ARGV[5] then return rej('district_mismatch') end

local mark_before = mark_at(index, skew, depth)
local value = qty * mark_before
local upnl = entry_notional - value
if side == 'long' then upnl = value - entry_notional end
if not ((margin + upnl) * 10000 < mm_bps * value) then return rej('not_liquidatable') end

local q = qty
if side == 'long' then q = -qty end
local new_skew = skew + q           -- never refused for the cap: may pass it, and the depth

local two_s = 2 * depth
local num = fill_num(index, skew, depth, q)               -- N * 2S, exact
local exit_notional, price
if q > 0 then
  exit_notional = ceil_div(num, two_s)
  price = ceil_div(num, two_s * qty)
else
  exit_notional = floor_div(num, two_s)
  price = floor_div(num, two_s * qty)
end
if price < 1 then price = 1 end
local pnl = entry_notional - exit_notional
if side == 'long' then pnl = exit_notional - entry_notional end
local fee = ceil_div(exit_notional * fee_bps, 10000)
local payout = margin + pnl - fee
if payout < 0 then payout = 0 end
local margin_part = margin

-- Accepted: from here on every key changes.
local trade_id = redis.call('HINCRBY', KEYS[4], 'trade', 1)
local s_user, s_iid, s_pos, s_trade = fmt(user), fmt(iid), fmt(pid), fmt(trade_id)

available = available + payout
locked = locked - margin_part
local equity = available + locked
redis.call('HSET', KEYS[2], 'available', fmt(available), 'locked', fmt(locked),
  'equity', fmt(equity), 'seq', s_trade)
local house_available = redis.call('HINCRBY', KEYS[3], 'available', fmt(margin_part - payout))
redis.call('HSET', KEYS[3], 'seq', s_trade)

if side == 'long' then long_units = long_units - qty else short_units = short_units - qty end
pseq = pseq + 1
redis.call('HSET', KEYS[1], 'skew', fmt(new_skew), 'long', fmt(long_units),
  'short', fmt(short_units), 'pseq', fmt(pseq))
local mark = mark_at(index, new_skew, depth)

pos_pnl = pos_pnl + pnl
local s_now = fmt(now)
redis.call('HSET', KEYS[5], 'qty', '0', 'entry_notional', '0', 'margin', '0',
  'status', 'liquidated', 'realised_pnl', fmt(pos_pnl), 'seq', s_trade, 'closed_ts', s_now)

local entry = {'trade_id', s_trade, 'kind', 'liquidation', 'user_id', s_user,
  'position_id', s_pos, 'instrument_id', s_iid, 'side', side, 'qty', fmt(qty),
  'price', fmt(price), 'notional', fmt(exit_notional), 'fee', fmt(fee),
  'margin', fmt(margin_part), 'realised_pnl', fmt(pnl), 'payout', fmt(payout),
  'leverage', fmt(lev), 'index_price', fmt(index), 'skew_after', fmt(new_skew),
  'idempotency_key', '', 'request_hash', '', 'ts', s_now,
  'pos_qty', '0', 'pos_entry_price', p[10], 'pos_entry_notional', '0',
  'pos_margin', '0', 'pos_realised_pnl', fmt(pos_pnl), 'pos_status', 'liquidated',
  'pos_seq', s_trade, 'pos_opened_ts', p[11] or '', 'pos_closed_ts', s_now,
  'w_available', fmt(available), 'w_locked', fmt(locked),
  'house_available', fmt(house_available), 'epoch', epoch, 'prev_seq', w[4] or '0'}
redis.call('XADD', KEYS[6], '*', unpack(entry))

redis.call('SADD', KEYS[7], 'w:' .. s_user, 'w:0', 'p:' .. s_pos, 'i:' .. s_iid)
redis.call('ZADD', KEYS[8], fmt(equity), s_user)
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[9], fmt(equity), s_user) end
redis.call('PUBLISH', ARGV[9], cmsgpack.pack({type = 'PRICE_UPDATE', id = iid, price = mark,
  index = index, skew = new_skew, seq = pseq, ts = now}))

return {'ok', '0', 'mark', fmt(mark), unpack(entry)}
