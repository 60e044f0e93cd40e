-- 0002: keep each instrument's PRICE_UPDATE sequence, so a rebuilt Redis continues it
-- (clients detect gaps by it) instead of starting again from zero.
ALTER TABLE instruments ADD COLUMN pseq bigint NOT NULL DEFAULT 0 CHECK (pseq >= 0);
