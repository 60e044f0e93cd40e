--[[
position_close.lua: close an open position, in whole or in part, at the AMM fill price, atomically.

KEYS[1]  instrument hash            instrument:{id} (the position's instrument)
KEYS[2]  the user's wallet hash     wallet:{userId}
KEYS[3]  the house wallet hash      wallet:0 (fee and the other side of the PnL)
KEYS[4]  idempotency hash           idem:{userId}:{key} (fields hash, reply, trade; TTL ARGV[11])
KEYS[5]  id counters hash           seq (HINCRBY field trade)
KEYS[6]  position hash              position:{id}
KEYS[7]  trade outbox stream        outbox:trades
KEYS[8]  dirty set                  dirty
KEYS[9]  overall leaderboard        leaderboard:overall
KEYS[10] district leaderboard       leaderboard:district:{d} (any key when ARGV[8] is '')
KEYS[11] boot marker                boot: the epoch of this Redis incarnation (set by the rebuild; missing while Redis is
                                    rebuilt from PostgreSQL: reply 'recovering'). Every trade carries it.
KEYS[12] the user's used keys       usedkeys:{userId} (as in position_open.lua)
ARGV[1]  user id                    integer >= 1; must own the position
ARGV[2]  position id                integer >= 1
ARGV[3]  instrument id              must be the position's instrument
ARGV[4]  qty to close               0 = all; else 1 .. the position's qty
ARGV[5]  acceptable price, cents    1 .. 10^9: closing a long sells (F >= it), a short buys (F <= it)
ARGV[6]  idempotency key            string, stored in the trade
ARGV[7]  now, ms since the epoch
ARGV[8]  the user's district id     '' = none; must equal the wallet's field district
ARGV[9]  fee, bps                   0 .. 1000 (the instrument's field fee_bps overrides it)
ARGV[10] max index age, ms          0 = no staleness check
ARGV[11] idempotency TTL, ms        86400000 (24 h)
ARGV[12] price channel              price:{id}
ARGV[13] key hash                   integer 0 .. 2^31-1 of ARGV[6] (as in position_open.lua)
ARGV[14] ledger checked             '1': the api found no recorded trade of this key; else '0'
ARGV[15] used keys TTL, ms          e.g. 604800000 (7 days)

Replies (arrays of strings, numbers formatted with %d)
  {'ok', replay, 'mark', m, field, value, ...}  m is the mark after the trade; the field/value
     pairs are the trade exactly as XADDed to the outbox (fields as in position_open.lua, kind
     'close'; margin = the margin released, pos_qty = the units left, pos_status open|closed).
     replay '0' the first time; '1' when the same key and body come again (the first reply).
  {'rejected', code}  nothing changed. Codes: recovering bad_user bad_qty bad_price bad_args conflict
     key_used no_used_keys not_found not_owner not_open wrong_instrument unknown_instrument
     instrument_bounds halted instrument_closed stale_index no_wallet district_mismatch slippage
     (never skew_cap). key_used and no_used_keys as in position_open.lua.

Money: closing k of q units trades signed size -k (long) or +k (short) at the AMM price of
position_open.lua (fill_num: X = 2S x the exact cost); exit notional floor(X / 2S) for a sell,
ceil for a buy (against the trader), price floor / ceil(X / 2S k), slippage against
min(acceptable, 2I + 1) * 2S * k. The closed part of the entry notional is
ceil(N_e k / q) for a long, floor for a short; the released margin floor(M k / q) (all of both
when k = q). PnL = exit - entry part (long) or entry part - exit (short); fee = ceil(exit bps/10^4);
payout = max(M_part + PnL - fee, 0); a loss beyond M_part is taken from the margin left on the
position (released = M_part + that), so splitting a losing close gains nothing. locked -=
released, available += payout, house available += released - payout: money is conserved and
the user never goes negative.

Skew: reducing or closing a position is never refused for the skew cap (only opens are capped),
so a close may take |skew| beyond the cap and even beyond the depth (skew = Σ open long - Σ open
short is bounded only by the open interest). The mark curve is clamped (position_open.lua,
Pricing): a sell fills at 1 cent a unit at least (N >= k, never negative), a buy at 2I at most,
and the mark published after the trade is 1 .. 2I cents. instrument_bounds only for a broken hash
(index not 1 .. 100000, depth not 1 .. 100000, skew not an integer with |skew| <= 10^15, ...);
the cap is not read.

Bounds (every integer intermediate below 2^53): X <= 4 I S k <= 4 * 10^15 for any such skew (the
clamp); the slippage limit <= (2I + 1) 2S k < 4.0001 * 10^15; N <= 2I k <= 2 * 10^10 and, from
the open, M <= N_e <= 2 * 10^5 q <= 2 * 10^10, so N_e k and M k <= 2 * 10^15, N bps <= 2 * 10^13;
|skew| + k <= 10^15 + 10^5.

Effects: as position_open.lua (position, wallet, house, instrument, XADD of the same fields with
kind 'close', SADD dirty, ZADD leaderboards, PUBLISH). The position keeps its row: status 'closed'
and qty 0 once everything is closed, closed_ts set.
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

local epoch = redis.call('GET', KEYS[11])  -- this Redis incarnation (fences its writes)
if not epoch then return rej('recovering') end
local user = int_arg(ARGV[1], 1, MAX_ID)
if not user then return rej('bad_user') end
local pid = int_arg(ARGV[2], 1, MAX_ID)
local iid = int_arg(ARGV[3], 1, MAX_ID)
if not (pid and iid) then return rej('bad_args') end
local want = int_arg(ARGV[4], 0, 100000)
if not want then return rej('bad_qty') end
local acceptable = int_arg(ARGV[5], 1, 1000000000)
if not acceptable then return rej('bad_price') end
local now = int_arg(ARGV[7], 0, MAX_ID)
local fee_default = int_arg(ARGV[9], 0, 1000)
local max_age = int_arg(ARGV[10], 0, MAX_ID)
local ttl = int_arg(ARGV[11], 1, MAX_ID)
local key_hash = int_arg(ARGV[13], 0, 2147483647)
local used_ttl = int_arg(ARGV[15], 1, MAX_ID)
if not (now and fee_default and max_age and ttl and key_hash and used_ttl) then return rej('bad_args') end

local request_hash = redis.sha1hex(table.concat(
  {'close', fmt(user), fmt(pid), fmt(iid), fmt(want), fmt(acceptable)}, '|'))
local idem = redis.call('HMGET', KEYS[4], 'hash', 'reply')
if idem[1] then
  if idem[1] ~= request_hash then return rej('conflict') end
  local first = cmsgpack.unpack(idem[2])
  first[2] = '1'
  return first
end
-- Durable idempotency (docs/ledger.md): a key with no record here may still be held by a recorded
-- trade (its record expired, or Redis was lost since): the used-keys set says when PostgreSQL must
-- be asked first ('key_used'; a hash collision only costs that question).
local used = redis.call('SISMEMBER', KEYS[12], ARGV[13])
if used == 1 and ARGV[14] ~= '1' then return rej('key_used') end
if used == 0 and redis.call('EXISTS', KEYS[12]) == 0 then return rej('no_used_keys') end

local p = redis.call('HMGET', KEYS[6], 'user', 'instrument', 'side', 'qty', 'entry_notional',
  'margin', 'leverage', 'status', 'realised_pnl', 'entry_price', 'opened_ts')
if not p[1] then return rej('not_found') end
if tonumber(p[1]) ~= user then return rej('not_owner') end
if p[8] ~= 'open' then return rej('not_open') end
if tonumber(p[2]) ~= iid then return rej('wrong_instrument') end
local side, pos_qty = p[3], tonumber(p[4])
local entry_notional, margin, lev = tonumber(p[5]), tonumber(p[6]), tonumber(p[7])
local pos_pnl = tonumber(p[9] or '0')
local qty = want
if qty == 0 then qty = pos_qty end
if qty > pos_qty then return rej('bad_qty') end

local ins = redis.call('HMGET', KEYS[1], 'index', 'index_ts', 'skew', 'depth', 'status',
  'long', 'short', 'pseq', 'fee_bps')
if not ins[1] then return rej('unknown_instrument') end
local index, index_ts = tonumber(ins[1]), tonumber(ins[2] or '0')
local skew, depth = tonumber(ins[3] or '0'), tonumber(ins[4] or '')
local long_units, short_units = tonumber(ins[6] or '0'), tonumber(ins[7] or '0')
local pseq = tonumber(ins[8] or '0')
local fee_bps = fee_default
if ins[9] and ins[9] ~= '' then fee_bps = int_arg(ins[9], 0, 1000) end
-- No cap and no |skew| < depth here: a close is never refused for the skew (only a broken hash).
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
if (w[3] or '') ~= ARGV[8] then return rej('district_mismatch') end

local q = qty                       -- closing a short buys back
if side == 'long' then q = -qty end -- closing a long sells
local new_skew = skew + q           -- never refused for the cap: may pass it, and the depth

local two_s = 2 * depth
local num = fill_num(index, skew, depth, q)               -- N * 2S, exact
local per = two_s * qty                                   -- X / per = F
local limit = math.min(acceptable, 2 * index + 1) * per
if (q > 0 and num > limit) or (q < 0 and num < limit) then
  return rej('slippage')
end
local exit_notional, price
if q > 0 then
  exit_notional = ceil_div(num, two_s)
  price = ceil_div(num, per)
else
  exit_notional = floor_div(num, two_s)
  price = floor_div(num, per)
end
if price < 1 then price = 1 end
local entry_part, margin_part = entry_notional, margin
if qty < pos_qty then
  if side == 'long' then
    entry_part = ceil_div(entry_notional * qty, pos_qty)
  else
    entry_part = floor_div(entry_notional * qty, pos_qty)
  end
  margin_part = floor_div(margin * qty, pos_qty)
end
local pnl = entry_part - exit_notional
if side == 'long' then pnl = exit_notional - entry_part end
local fee = ceil_div(exit_notional * fee_bps, 10000)
local payout = margin_part + pnl - fee
if payout < 0 then                  -- a loss beyond the margin part eats the margin left
  local take = -payout
  if take > margin - margin_part then take = margin - margin_part end
  margin_part = margin_part + take
  payout = 0
end

-- Accepted: from here on every key changes.
local trade_id = redis.call('HINCRBY', KEYS[5], 'trade', 1)
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

local remaining = pos_qty - qty
local pos_status, closed_ts = 'open', ''
if remaining == 0 then pos_status, closed_ts = 'closed', fmt(now) end
entry_notional = entry_notional - entry_part
margin = margin - margin_part
pos_pnl = pos_pnl + pnl
redis.call('HSET', KEYS[6], 'qty', fmt(remaining), 'entry_notional', fmt(entry_notional),
  'margin', fmt(margin), 'status', pos_status, 'realised_pnl', fmt(pos_pnl), 'seq', s_trade)
if remaining == 0 then redis.call('HSET', KEYS[6], 'closed_ts', closed_ts) end

local entry = {'trade_id', s_trade, 'kind', 'close', 'user_id', s_user,
  'position_id', s_pos, 'instrument_id', s_iid, 'side', side, 'qty', fmt(qty),
  'price', fmt(price), 'notional', fmt(exit_notional), 'fee', fmt(fee),
  'margin', fmt(margin_part), 'realised_pnl', fmt(pnl), 'payout', fmt(payout),
  'leverage', fmt(lev), 'index_price', fmt(index), 'skew_after', fmt(new_skew),
  'idempotency_key', ARGV[6], 'request_hash', request_hash, 'ts', fmt(now),
  'pos_qty', fmt(remaining), 'pos_entry_price', p[10], 'pos_entry_notional', fmt(entry_notional),
  'pos_margin', fmt(margin), 'pos_realised_pnl', fmt(pos_pnl), 'pos_status', pos_status,
  'pos_seq', s_trade, 'pos_opened_ts', p[11] or '', 'pos_closed_ts', closed_ts,
  'w_available', fmt(available), 'w_locked', fmt(locked),
  'house_available', fmt(house_available), 'epoch', epoch, 'prev_seq', w[4] or '0'}
redis.call('XADD', KEYS[7], '*', unpack(entry))

redis.call('SADD', KEYS[12], ARGV[13])
redis.call('PEXPIRE', KEYS[12], used_ttl)
redis.call('SADD', KEYS[8], 'w:' .. s_user, 'w:0', 'p:' .. s_pos, 'i:' .. s_iid)
redis.call('ZADD', KEYS[9], fmt(equity), s_user)
if ARGV[8] ~= '' then redis.call('ZADD', KEYS[10], fmt(equity), s_user) end
redis.call('PUBLISH', ARGV[12], cmsgpack.pack({type = 'PRICE_UPDATE', id = iid, price = mark,
  index = index, skew = new_skew, seq = pseq, ts = now}))

local reply = {'ok', '0', 'mark', fmt(mark), unpack(entry)}
redis.call('HSET', KEYS[4], 'hash', request_hash, 'reply', cmsgpack.pack(reply),
  'trade', s_trade)
redis.call('PEXPIRE', KEYS[4], ttl)
return reply
