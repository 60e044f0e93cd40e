-- 0004: the price feed's state, kept so that a restart or a new poller leader carries on exactly
-- where the last one stopped (docs/pricing.md, "Restarts"): per player his base price, index,
-- last rating and halt; per fixture how far it got and the events seen; the time of the last poll.
ALTER TABLE instruments ADD COLUMN base_price bigint CHECK (base_price BETWEEN 1 AND 100000);
UPDATE instruments SET base_price = index_price WHERE base_price IS NULL;

CREATE TABLE feed_players (
    player_id     bigint PRIMARY KEY,
    instrument_id bigint NOT NULL REFERENCES instruments (id),
    base_price    bigint NOT NULL CHECK (base_price BETWEEN 1 AND 100000),
    price         bigint NOT NULL CHECK (price BETWEEN 1 AND 100000),
    rating        double precision,
    halt_until_ms bigint
);

CREATE TABLE feed_fixtures (
    fixture_id      bigint PRIMARY KEY,
    progress_period integer,
    progress_s      integer,
    seen_events     bigint[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE feed_clock (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_step_ms bigint NOT NULL
);
