--[[
wallet_district.lua: set a hot wallet's district to PostgreSQL's and move the user's district
leaderboard entry with it, atomically (a login that adds a district to an existing hot wallet).

KEYS[1]  the user's wallet hash     wallet:{userId}
KEYS[2]  overall leaderboard        leaderboard:overall (read only: the score to carry over)
KEYS[3]  district leaderboard key   leaderboard:district: (the old and the new district id are
                                    appended: the old one is only known here. FTL runs on one
                                    Redis primary, as for rebuild_load.lua)
ARGV[1]  user id                    integer >= 1 (the leaderboard member)
ARGV[2]  district id                '' = none: the value of users.district_id in PostgreSQL

Score on the new board: the user's overall score (it carries the unrealised PnL and the tie-break
of the last mark-to-market, which writes the same score to both boards), else the wallet's field
equity, else available + locked.

Replies
  {'missing', ''}   the wallet hash does not exist: nothing changed (ensure_wallet loads it from
                    PostgreSQL, district included)
  {'same', d}       the wallet's district is d already: nothing changed
  {'moved', old}    district set to ARGV[2]; ZREM from KEYS[3]..old when old is not '', ZADD
                    KEYS[3]..ARGV[2] when ARGV[2] is not ''
  {'bad_user', ''}  ARGV[1] is not an integer >= 1; nothing changed
]]
local user = tonumber(ARGV[1])
if user == nil or user < 1 or user ~= math.floor(user) then return {'bad_user', ''} end
local member, new = ARGV[1], ARGV[2]

if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', ''} end
local w = redis.call('HMGET', KEYS[1], 'district', 'equity', 'available', 'locked')
local old = w[1] or ''
if old == new then return {'same', old} end

if new ~= '' then
  local score = redis.call('ZSCORE', KEYS[2], member)
  if not score then
    if w[2] and tonumber(w[2]) then
      score = w[2]
    else
      score = string.format('%d', (tonumber(w[3] or '0') or 0) + (tonumber(w[4] or '0') or 0))
    end
  end
  redis.call('ZADD', KEYS[3] .. new, score, member)
end
if old ~= '' then redis.call('ZREM', KEYS[3] .. old, member) end
redis.call('HSET', KEYS[1], 'district', new)
return {'moved', old}
