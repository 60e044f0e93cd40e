-- trade.lua (after base.lua, amm.lua and price.lua): what the three position scripts share: the
-- instrument, wallet and position reads with their checks, the fill and its slippage test, the
-- booking of an accepted trade, its outbox entry (the field list, written once) and its effects
-- on the dirty set, boards and channel.

-- The instrument hash, checked for a trade; nil and a rejection code if it cannot trade.
-- capped (an open): the cap is read and |skew| < depth required. Else (a close, a liquidation:
-- never refused for the skew) any integer skew up to MAX_SKEW.
local function read_market(key, fee_default, now, max_age, capped)
  local ins = redis.call('HMGET', key, 'index', 'index_ts', 'skew', 'depth', 'status', 'long',
    'short', 'pseq', 'fee_bps', 'cap')
  if not ins[1] then return nil, 'unknown_instrument' end
  local m = {index = tonumber(ins[1]), index_ts = tonumber(ins[2] or '0'),
    skew = tonumber(ins[3] or '0'), depth = tonumber(ins[4] or ''), status = ins[5] or 'open',
    long = tonumber(ins[6] or '0'), short = tonumber(ins[7] or '0'),
    pseq = tonumber(ins[8] or '0'), fee_bps = fee_default}
  if ins[9] and ins[9] ~= '' then m.fee_bps = int_arg(ins[9], 0, MAX_FEE_BPS) end
  local ok = m.index and m.index >= 1 and m.index <= MAX_PRICE and m.depth and m.depth >= 1
    and m.depth <= MAX_DEPTH and m.skew and m.index_ts and m.long and m.short and m.pseq
    and m.fee_bps
  if ok and capped then
    m.cap = tonumber(ins[10] or '')
    ok = m.cap and m.cap >= 0 and m.cap < m.depth and math.abs(m.skew) < m.depth
  elseif ok then
    ok = m.skew == math.floor(m.skew) and math.abs(m.skew) <= MAX_SKEW
  end
  if not ok then return nil, 'instrument_bounds' end
  if m.status == 'halted' then return nil, 'halted' end
  if m.status ~= 'open' then return nil, 'instrument_closed' end
  if max_age > 0 and now - m.index_ts > max_age then return nil, 'stale_index' end
  return m
end

-- The user's wallet hash (district must match); nil and a rejection code if it cannot trade.
-- prev_seq: the user's previous trade, which PostgreSQL must have first.
local function read_wallet(key, district)
  local w = redis.call('HMGET', key, 'available', 'locked', 'district', 'seq')
  if not w[1] then return nil, 'no_wallet' end
  if (w[3] or '') ~= district then return nil, 'district_mismatch' end
  return {available = tonumber(w[1]), locked = tonumber(w[2] or '0'), prev_seq = w[4] or '0'}
end

-- Books an accepted trade (id s_trade) on the user's wallet (w), the house wallet and the
-- instrument (m): d_available, d_locked and d_house move money (they sum to 0); d_units moves the
-- open interest of side; the skew becomes new_skew and pseq goes up by one. Updates w and m;
-- returns the user's equity, the house's available balance and the mark after the trade.
local function book(k_wallet, k_house, k_instrument, w, m, s_trade, d_available, d_locked,
                    d_house, side, d_units, new_skew)
  w.available = w.available + d_available
  w.locked = w.locked + d_locked
  local equity = w.available + w.locked
  redis.call('HSET', k_wallet, 'available', fmt(w.available), 'locked', fmt(w.locked),
    'equity', fmt(equity), 'seq', s_trade)
  local house_available = redis.call('HINCRBY', k_house, 'available', fmt(d_house))
  redis.call('HSET', k_house, 'seq', s_trade)
  if side == 'long' then m.long = m.long + d_units else m.short = m.short + d_units end
  m.pseq = m.pseq + 1
  m.skew = new_skew
  redis.call('HSET', k_instrument, 'skew', fmt(new_skew), 'long', fmt(m.long),
    'short', fmt(m.short), 'pseq', fmt(m.pseq))
  return equity, house_available, mark_at(m.index, new_skew, m.depth)
end

-- The outbox entry of a trade: its fields in this order (ftl/persistence/ledger.py reads them),
-- numbers formatted with %d.
local ENTRY_FIELDS = {'trade_id', 'kind', 'user_id', 'position_id', 'instrument_id', 'side',
  'qty', 'price', 'notional', 'fee', 'margin', 'realised_pnl', 'payout', 'leverage',
  'index_price', 'skew_after', 'idempotency_key', 'request_hash', 'ts', 'pos_qty',
  'pos_entry_price', 'pos_entry_notional', 'pos_margin', 'pos_realised_pnl', 'pos_status',
  'pos_seq', 'pos_opened_ts', 'pos_closed_ts', 'w_available', 'w_locked', 'house_available',
  'epoch', 'prev_seq'}
local function outbox_entry(t)
  local out = {}
  for _, name in ipairs(ENTRY_FIELDS) do
    local v = t[name]
    if type(v) == 'number' then v = fmt(v) end
    out[#out + 1] = name
    out[#out + 1] = v
  end
  return out
end

-- The effects every trade has after its booking: XADD of its entry (outbox_entry(t)) to the
-- outbox, the dirty set, the user's score on the boards (the district board when district is
-- not ''), and the instrument's new price on its channel, stamped t.ts. Returns the reply
-- {'ok', '0', 'mark', m, entry...}.
local function emit(k_outbox, k_dirty, k_board, k_district_board, channel, t, equity, district,
                    m, mark)
  local entry = outbox_entry(t)
  redis.call('XADD', k_outbox, '*', unpack(entry))
  redis.call('SADD', k_dirty, 'w:' .. t.user_id, 'w:0', 'p:' .. t.position_id,
    'i:' .. t.instrument_id)
  redis.call('ZADD', k_board, fmt(equity), t.user_id)
  if district ~= '' then redis.call('ZADD', k_district_board, fmt(equity), t.user_id) end
  publish_price(channel, tonumber(t.instrument_id), mark, m.index, m.skew, m.pseq, t.ts)
  return {'ok', '0', 'mark', fmt(mark), unpack(entry)}
end

-- The fill of q units (q > 0 buys, q < 0 sells; qty = |q|) at market m: num = 2S x its exact
-- cost (amm.lua fill_num), its notional and per-unit price rounded against the trader (ceil
-- for a buy, floor for a sell; at least 1 cent a unit).
local function fill(m, q, qty)
  local two_s = 2 * m.depth
  local num = fill_num(m.index, m.skew, m.depth, q)
  local notional, price
  if q > 0 then
    notional, price = ceil_div(num, two_s), ceil_div(num, two_s * qty)
  else
    notional, price = floor_div(num, two_s), floor_div(num, two_s * qty)
  end
  if price < 1 then price = 1 end
  return num, notional, price
end

-- Whether the fill is worse than acceptable: a buy needs F <= it, a sell F >= it, compared as
-- num against min(acceptable, 2I + 1) * 2S * qty (F <= 2I, so that is exact and < 2^53).
local function slipped(m, q, qty, num, acceptable)
  local limit = math.min(acceptable, 2 * m.index + 1) * 2 * m.depth * qty
  return (q > 0 and num > limit) or (q < 0 and num < limit)
end

-- The position hash for a close or a liquidation by user on instrument iid; nil and a
-- rejection code when it is not such an open position.
local function read_position(key, user, iid)
  local p = redis.call('HMGET', key, 'user', 'instrument', 'side', 'qty', 'entry_notional',
    'margin', 'leverage', 'status', 'realised_pnl', 'entry_price', 'opened_ts')
  if not p[1] then return nil, 'not_found' end
  if tonumber(p[1]) ~= user then return nil, 'not_owner' end
  if p[8] ~= 'open' then return nil, 'not_open' end
  if tonumber(p[2]) ~= iid then return nil, 'wrong_instrument' end
  return {side = p[3], qty = tonumber(p[4]), entry_notional = tonumber(p[5]),
    margin = tonumber(p[6]), leverage = tonumber(p[7]), realised_pnl = tonumber(p[9] or '0'),
    entry_price = p[10], opened_ts = p[11] or ''}
end
