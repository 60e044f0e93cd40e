-- price.lua (after base.lua): the PRICE_UPDATE message, written once for every script that moves
-- a price (docs/protocol.md; ftl/realtime/protocol.py re-encodes it for the sockets).
local function publish_price(channel, iid, mark, index, skew, pseq, ts)
  redis.call('PUBLISH', channel, cmsgpack.pack({type = 'PRICE_UPDATE', id = iid, price = mark,
    index = index, skew = skew, seq = pseq, ts = ts}))
end
