-- amm.lua (after base.lua): the mark curve and the exact cost of a trade, as ftl/trading/amm.py
-- (low_skew, mark, fill_num). The mark I (S + x) / S is read at the skew x clamped into [lo, S],
-- lo = -S + ceil(S/I) the lowest skew whose mark is >= 1 cent.
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
