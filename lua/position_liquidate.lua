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
--- @include "base"
--- @include "amm"
--- @include "price"
--- @include "trade"

local epoch = redis.call('GET', KEYS[10])  -- this Redis incarnation (fences its writes)
if not epoch then return rej('recovering') end
local user = int_arg(ARGV[1], 1, MAX_ID)
if not user then return rej('bad_user') end
local pid = int_arg(ARGV[2], 1, MAX_ID)
local iid = int_arg(ARGV[3], 1, MAX_ID)
local now = int_arg(ARGV[4], 0, MAX_ID)
local fee_default = int_arg(ARGV[6], 0, MAX_FEE_BPS)
local max_age = int_arg(ARGV[7], 0, MAX_ID)
local mm_bps = int_arg(ARGV[8], 0, MAX_MM_BPS)
if not (pid and iid and now and fee_default and max_age and mm_bps) then
  return rej('bad_args')
end

local p, why_p = read_position(KEYS[5], user, iid)
if not p then return rej(why_p) end
local side, qty = p.side, p.qty
local entry_notional, margin = p.entry_notional, p.margin

local m, why = read_market(KEYS[1], fee_default, now, max_age, false)
if not m then return rej(why) end
local w, why_w = read_wallet(KEYS[2], ARGV[5])
if not w then return rej(why_w) end

local value = qty * mark_at(m.index, m.skew, m.depth)
local upnl = entry_notional - value
if side == 'long' then upnl = value - entry_notional end
if not ((margin + upnl) * 10000 < mm_bps * value) then return rej('not_liquidatable') end

local q = qty
if side == 'long' then q = -qty end
local new_skew = m.skew + q         -- never refused for the cap: may pass it, and the depth

local _, exit_notional, price = fill(m, q, qty)
local pnl = entry_notional - exit_notional
if side == 'long' then pnl = exit_notional - entry_notional end
local fee = ceil_div(exit_notional * m.fee_bps, 10000)
local payout = margin + pnl - fee
if payout < 0 then payout = 0 end

-- Accepted: from here on every key changes.
local trade_id = redis.call('HINCRBY', KEYS[4], 'trade', 1)
local s_user, s_iid, s_pos, s_trade = fmt(user), fmt(iid), fmt(pid), fmt(trade_id)
local index = m.index
local equity, house_available, mark = book(KEYS[2], KEYS[3], KEYS[1], w, m, s_trade,
  payout, -margin, margin - payout, side, -qty, new_skew)

local pos_pnl = p.realised_pnl + pnl
local s_now = fmt(now)
redis.call('HSET', KEYS[5], 'qty', '0', 'entry_notional', '0', 'margin', '0',
  'status', 'liquidated', 'realised_pnl', fmt(pos_pnl), 'seq', s_trade, 'closed_ts', s_now)

local t = {trade_id = s_trade, kind = 'liquidation', user_id = s_user, position_id = s_pos,
  instrument_id = s_iid, side = side, qty = qty, price = price, notional = exit_notional,
  fee = fee, margin = margin, realised_pnl = pnl, payout = payout, leverage = p.leverage,
  index_price = index, skew_after = new_skew, idempotency_key = '', request_hash = '',
  ts = now, pos_qty = 0, pos_entry_price = p.entry_price, pos_entry_notional = 0,
  pos_margin = 0, pos_realised_pnl = pos_pnl, pos_status = 'liquidated', pos_seq = s_trade,
  pos_opened_ts = p.opened_ts, pos_closed_ts = s_now, w_available = w.available,
  w_locked = w.locked, house_available = house_available, epoch = epoch, prev_seq = w.prev_seq}
return emit(KEYS[6], KEYS[7], KEYS[8], KEYS[9], ARGV[9], t, equity, ARGV[5], m, mark)
