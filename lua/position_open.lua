--[[
position_open.lua: open an isolated-margin CFD position at the linear-skew AMM fill price, atomically.

KEYS[1]  instrument hash            instrument:{id}
KEYS[2]  the user's wallet hash     wallet:{userId}
KEYS[3]  the house wallet hash      wallet:0 (receives the fee)
KEYS[4]  idempotency hash           idem:{userId}:{key} (fields hash, reply, trade; TTL ARGV[12])
KEYS[5]  id counters hash           seq (HINCRBY fields trade, position)
KEYS[6]  position key prefix        position: (the new position is KEYS[6]..id, see below)
KEYS[7]  trade outbox stream        outbox:trades
KEYS[8]  dirty set                  dirty (members w:<userId>, w:0, p:<positionId>, i:<id>)
KEYS[9]  overall leaderboard        leaderboard:overall
KEYS[10] district leaderboard       leaderboard:district:{d} (any key when ARGV[9] is '')
KEYS[11] boot marker                boot: the epoch of this Redis incarnation (set by the rebuild; missing while Redis is
                                    rebuilt from PostgreSQL: reply 'recovering'). Every trade carries it.
KEYS[12] the user's used keys       usedkeys:{userId}: a set holding the key hash (ARGV[14]) of every
                                    idempotency key PostgreSQL may hold for this user, and -1 (loaded;
                                    lua/used_keys_load.lua). TTL ARGV[16], renewed by every trade.
ARGV[1]  user id                    integer >= 1
ARGV[2]  instrument id              integer >= 1
ARGV[3]  side                       long | short
ARGV[4]  qty                        integer 1 .. 100000
ARGV[5]  leverage                   integer 1 .. 5
ARGV[6]  acceptable price, cents    1 .. 10^9: a long needs F <= it, a short F >= it
ARGV[7]  idempotency key            string, stored in the trade
ARGV[8]  now, ms since the epoch
ARGV[9]  the user's district id     '' = none; must equal the wallet's field district
ARGV[10] fee, bps                   0 .. 1000 (the instrument's field fee_bps overrides it)
ARGV[11] max index age, ms          0 = no staleness check
ARGV[12] idempotency TTL, ms        86400000 (24 h)
ARGV[13] price channel              price:{id}
ARGV[14] key hash                   integer 0 .. 2^31-1 of ARGV[7] (ftl/trading/idempotency.py key_hash)
ARGV[15] ledger checked             '1': the api found no recorded trade of this key in PostgreSQL
                                    (skip the used-keys test); else '0'
ARGV[16] used keys TTL, ms          e.g. 604800000 (7 days)

Replies (arrays of strings, numbers formatted with %d)
  {'ok', replay, 'mark', m, field, value, ...}  m is the mark after the trade; the field/value
     pairs are the trade exactly as XADDed to the outbox (listed under Effects below).
     replay '0' the first time; '1' when the same key and body come again (the first reply).
  {'rejected', code}  nothing changed. Codes: recovering bad_user bad_side bad_qty bad_leverage
     bad_price bad_args conflict key_used no_used_keys unknown_instrument instrument_bounds halted
     instrument_closed stale_index no_wallet district_mismatch skew_cap slippage insufficient_funds
  key_used: the key's hash is in the used-keys set (KEYS[12]) but Redis has no record of it: ask
     PostgreSQL (the recorded trade's reply, or 409), and call again with ARGV[15] '1' if it has
     none. no_used_keys: the set is missing (Redis was lost, or it expired): fill it
     (lua/used_keys_load.lua) and call again.

The position id is handed out here (HINCRBY), so its key KEYS[6]..id is the one key built in the
script, as BullMQ does for job keys.

Bounds (every integer intermediate stays below 2^53): index 1 .. 100000 cents, depth 1 .. 100000,
0 <= cap < depth, |skew| < depth, qty <= 100000; else instrument_bounds / bad_qty. Only opens are
capped: a close or a liquidation may leave |skew| beyond the cap (position_close.lua).

Pricing (fill_num below, as ftl/trading/amm.py): the mark I (S + x) / S is read at the skew x
clamped into [lo, S], lo = -S + ceil(S/I) the lowest skew whose mark is at least 1 cent; a trade of
q units costs the integral of that mark from s to s + q. X = 2S x that integral is an integer: with
the path within [lo, S] it is |q| I (2S + 2s + q), the linear AMM's |q| F 2S with F = I (2S + 2s +
q) / 2S. Every unit adds 2S .. 4IS to X, so X <= 4 I S |q| <= 4 * 10^15 < 2^53 whatever the skew,
every fill is 1 cent .. 2I a unit and the mark 1 .. 2I cents. The slippage limit compares X with
min(acceptable, 2I + 1) * 2S * qty (F <= 2I, so that is exact and <= 4.0001 * 10^15).

Money: N = ceil(X / 2S) for a long, floor for a short (so qty <= N <= 2I qty); price =
ceil(X / 2S qty) for a long, floor for a short; fee = ceil(N bps / 10^4); margin =
ceil(N / leverage). available -= margin + fee, locked += margin, house available += fee. Wallet
equity = available + locked (the flusher adds unrealised PnL).

Effects: position hash; wallet, house, instrument (skew, long/short, pseq); XADD KEYS[7] of the
self-contained trade (trade_id kind user_id position_id instrument_id side qty price notional fee
margin realised_pnl payout leverage index_price skew_after idempotency_key request_hash ts; the
position row pos_qty pos_entry_price pos_entry_notional pos_margin pos_realised_pnl pos_status
pos_seq pos_opened_ts pos_closed_ts; w_available w_locked house_available; epoch, the boot
marker's value, which fences the write against a rebuilt Redis; prev_seq, the wallet's seq before
this trade: the user's previous trade, which PostgreSQL must have first); SADD dirty; ZADD
equity on the leaderboards; PUBLISH ARGV[13] cmsgpack {type='PRICE_UPDATE', id, price=mark,
index, skew, seq=pseq, ts=now}.
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
local iid = int_arg(ARGV[2], 1, MAX_ID)
if not iid then return rej('bad_args') end
local side = ARGV[3]
if side ~= 'long' and side ~= 'short' then return rej('bad_side') end
local qty = int_arg(ARGV[4], 1, MAX_QTY)
if not qty then return rej('bad_qty') end
local lev = int_arg(ARGV[5], MIN_LEVERAGE, MAX_LEVERAGE)
if not lev then return rej('bad_leverage') end
local acceptable = int_arg(ARGV[6], 1, MAX_ACCEPTABLE)
if not acceptable then return rej('bad_price') end
local now = int_arg(ARGV[8], 0, MAX_ID)
local fee_default = int_arg(ARGV[10], 0, MAX_FEE_BPS)
local max_age = int_arg(ARGV[11], 0, MAX_ID)
local ttl = int_arg(ARGV[12], 1, MAX_ID)
local key_hash = int_arg(ARGV[14], 0, 2147483647)
local used_ttl = int_arg(ARGV[16], 1, MAX_ID)
if not (now and fee_default and max_age and ttl and key_hash and used_ttl) then return rej('bad_args') end

local request_hash = redis.sha1hex(table.concat(
  {'open', fmt(user), fmt(iid), side, fmt(qty), fmt(lev), fmt(acceptable)}, '|'))
local first = first_reply(KEYS[4], request_hash)
if first then return first end
local unknown = used_key_check(KEYS[12], ARGV[14], ARGV[15])
if unknown then return rej(unknown) end

local m, why = read_market(KEYS[1], fee_default, now, max_age, true)
if not m then return rej(why) end
local w, why_w = read_wallet(KEYS[2], ARGV[9])
if not w then return rej(why_w) end

local q = qty
if side == 'short' then q = -qty end
local new_skew = m.skew + q
if math.abs(new_skew) > m.cap then return rej('skew_cap') end

local two_s = 2 * m.depth
local num = fill_num(m.index, m.skew, m.depth, q)         -- N * 2S, exact
local per = two_s * qty                                   -- X / per = F
local limit = math.min(acceptable, 2 * m.index + 1) * per
if (q > 0 and num > limit) or (q < 0 and num < limit) then
  return rej('slippage')
end
local notional, price
if q > 0 then
  notional = ceil_div(num, two_s)
  price = ceil_div(num, per)
else
  notional = floor_div(num, two_s)
  price = floor_div(num, per)
end
if price < 1 then price = 1 end
local fee = ceil_div(notional * m.fee_bps, 10000)
local margin = ceil_div(notional, lev)
if w.available < margin + fee then return rej('insufficient_funds') end

-- Accepted: from here on every key changes.
local trade_id = redis.call('HINCRBY', KEYS[5], 'trade', 1)
local pos_id = redis.call('HINCRBY', KEYS[5], 'position', 1)
local s_user, s_iid, s_pos, s_trade = fmt(user), fmt(iid), fmt(pos_id), fmt(trade_id)
local index = m.index
local equity, house_available, mark = book(KEYS[2], KEYS[3], KEYS[1], w, m, s_trade,
  -(margin + fee), margin, fee, side, qty, new_skew)

redis.call('HSET', KEYS[6] .. s_pos, 'user', s_user, 'instrument', s_iid, 'side', side,
  'qty', fmt(qty), 'entry_price', fmt(price), 'entry_notional', fmt(notional),
  'margin', fmt(margin), 'leverage', fmt(lev), 'status', 'open', 'realised_pnl', '0',
  'seq', s_trade, 'opened_ts', fmt(now))

local t = {trade_id = s_trade, kind = 'open', user_id = s_user, position_id = s_pos,
  instrument_id = s_iid, side = side, qty = qty, price = price, notional = notional, fee = fee,
  margin = margin, realised_pnl = 0, payout = 0, leverage = lev, index_price = index,
  skew_after = new_skew, idempotency_key = ARGV[7], request_hash = request_hash, ts = now,
  pos_qty = qty, pos_entry_price = price, pos_entry_notional = notional, pos_margin = margin,
  pos_realised_pnl = 0, pos_status = 'open', pos_seq = s_trade, pos_opened_ts = now,
  pos_closed_ts = '', w_available = w.available, w_locked = w.locked,
  house_available = house_available, epoch = epoch, prev_seq = w.prev_seq}
local reply = emit(KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[13], t, equity, ARGV[9], m, mark)
remember(KEYS[4], request_hash, reply, s_trade, ttl, KEYS[12], ARGV[14], used_ttl)
return reply
