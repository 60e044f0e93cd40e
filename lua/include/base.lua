-- base.lua (included by the trade and index scripts): argument checks, integer formatting and
-- rounding. Lua numbers are doubles: every integer here stays below 2^53.
--- @include "limits"
local MAX_ID = 9007199254740991
-- ARGV or hash value v as an integer in lo .. hi, else nil.
local function int_arg(v, lo, hi)
  local n = tonumber(v)
  if n == nil or not (n >= lo and n <= hi) or n ~= math.floor(n) then return nil end
  return n
end
local function fmt(x) return string.format('%d', x) end
local function floor_div(a, b) return math.floor(a / b) end
local function ceil_div(a, b) return -math.floor(-a / b) end
local function rej(code) return {'rejected', code} end
local function clamp(x, lo, hi)
  if x < lo then return lo elseif x > hi then return hi end
  return x
end
