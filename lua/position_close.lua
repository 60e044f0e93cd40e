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
--- @include "base"
--- @include "amm"
--- @include "price"
--- @include "idempotency"
--- @include "trade"

local epoch = redis.call('GET', KEYS[11])  -- this Redis incarnation (fences its writes)
if not epoch then return rej('recovering') end
local user = int_arg(ARGV[1], 1, MAX_ID)
if not user then return rej('bad_user') end
local pid = int_arg(ARGV[2], 1, MAX_ID)
local iid = int_arg(ARGV[3], 1, MAX_ID)
if not (pid and iid) then return rej('bad_args') end
local want = int_arg(ARGV[4], 0, MAX_QTY)
if not want then return rej('bad_qty') end
local acceptable = int_arg(ARGV[5], 1, MAX_ACCEPTABLE)
if not acceptable then return rej('bad_price') end
local now = int_arg(ARGV[7], 0, MAX_ID)
local fee_default = int_arg(ARGV[9], 0, MAX_FEE_BPS)
local max_age = int_arg(ARGV[10], 0, MAX_ID)
local ttl = int_arg(ARGV[11], 1, MAX_ID)
local key_hash = int_arg(ARGV[13], 0, 2147483647)
local used_ttl = int_arg(ARGV[15], 1, MAX_ID)
if not (now and fee_default and max_age and ttl and key_hash and used_ttl) then return rej('bad_args') end

local request_hash = redis.sha1hex(table.concat(
  {'close', fmt(user), fmt(pid), fmt(iid), fmt(want), fmt(acceptable)}, '|'))
local first = first_reply(KEYS[4], request_hash)
if first then return first end
local unknown = used_key_check(KEYS[12], ARGV[13], ARGV[14])
if unknown then return rej(unknown) end

local p, why_p = read_position(KEYS[6], user, iid)
if not p then return rej(why_p) end
local side, pos_qty = p.side, p.qty
local qty = want
if qty == 0 then qty = pos_qty end
if qty > pos_qty then return rej('bad_qty') end

local m, why = read_market(KEYS[1], fee_default, now, max_age, false)
if not m then return rej(why) end
local w, why_w = read_wallet(KEYS[2], ARGV[8])
if not w then return rej(why_w) end

local q = qty                       -- closing a short buys back
if side == 'long' then q = -qty end -- closing a long sells
local new_skew = m.skew + q         -- never refused for the cap: may pass it, and the depth

local num, exit_notional, price = fill(m, q, qty)
if slipped(m, q, qty, num, acceptable) then return rej('slippage') end
local entry_notional, margin = p.entry_notional, p.margin
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
local fee = ceil_div(exit_notional * m.fee_bps, 10000)
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
local index = m.index
local equity, house_available, mark = book(KEYS[2], KEYS[3], KEYS[1], w, m, s_trade,
  payout, -margin_part, margin_part - payout, side, -qty, new_skew)

local remaining = pos_qty - qty
local pos_status, closed_ts = 'open', ''
if remaining == 0 then pos_status, closed_ts = 'closed', fmt(now) end
entry_notional = entry_notional - entry_part
margin = margin - margin_part
local pos_pnl = p.realised_pnl + pnl
redis.call('HSET', KEYS[6], 'qty', fmt(remaining), 'entry_notional', fmt(entry_notional),
  'margin', fmt(margin), 'status', pos_status, 'realised_pnl', fmt(pos_pnl), 'seq', s_trade)
if remaining == 0 then redis.call('HSET', KEYS[6], 'closed_ts', closed_ts) end

local t = {trade_id = s_trade, kind = 'close', user_id = s_user, position_id = s_pos,
  instrument_id = s_iid, side = side, qty = qty, price = price, notional = exit_notional,
  fee = fee, margin = margin_part, realised_pnl = pnl, payout = payout, leverage = p.leverage,
  index_price = index, skew_after = new_skew, idempotency_key = ARGV[6],
  request_hash = request_hash, ts = now, pos_qty = remaining, pos_entry_price = p.entry_price,
  pos_entry_notional = entry_notional, pos_margin = margin, pos_realised_pnl = pos_pnl,
  pos_status = pos_status, pos_seq = s_trade, pos_opened_ts = p.opened_ts,
  pos_closed_ts = closed_ts, w_available = w.available, w_locked = w.locked,
  house_available = house_available, epoch = epoch, prev_seq = w.prev_seq}
local reply = emit(KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[12], t, equity, ARGV[8], m, mark)
remember(KEYS[4], request_hash, reply, s_trade, ttl, KEYS[12], ARGV[13], used_ttl)
return reply
