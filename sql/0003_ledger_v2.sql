-- 0003: ledger v2 (docs/ledger.md). No row that every trade touches on the synchronous path:
-- the api writes the trade, its position and its user's wallet, and a row in ledger_pending;
-- the flusher folds pending trades into the aggregates (house wallet, instrument skew and open
-- interest) and deletes them, in one transaction, so each trade is folded exactly once.

-- The epoch of the Redis incarnation whose writes PostgreSQL accepts, per Redis key prefix. A
-- rebuild raises it (under an exclusive advisory lock that every hot-path write holds shared)
-- before it reads anything; a write carrying an older epoch is refused in its own transaction.
CREATE TABLE redis_epochs (
    prefix     text PRIMARY KEY,
    epoch      bigint NOT NULL CHECK (epoch > 0),
    started_at timestamptz NOT NULL DEFAULT now()
);

-- Trades written but not yet folded into the aggregates (a queue inside PostgreSQL).
CREATE TABLE ledger_pending (
    trade_id bigint PRIMARY KEY REFERENCES trades (id)
);

-- Open interest per side, folded with the skew (skew = long_units - short_units).
ALTER TABLE instruments
    ADD COLUMN long_units bigint NOT NULL DEFAULT 0 CHECK (long_units >= 0),
    ADD COLUMN short_units bigint NOT NULL DEFAULT 0 CHECK (short_units >= 0);
UPDATE instruments i SET
    long_units = coalesce((SELECT sum(qty) FROM cfd_positions p
                           WHERE p.instrument_id = i.id AND p.status = 'open' AND p.side = 'long'), 0),
    short_units = coalesce((SELECT sum(qty) FROM cfd_positions p
                            WHERE p.instrument_id = i.id AND p.status = 'open' AND p.side = 'short'), 0);
UPDATE instruments SET skew = long_units - short_units;
