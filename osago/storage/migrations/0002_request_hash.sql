-- Idempotency: a calculation's id can be the client's request id; the hash of the validated
-- body tells a replay (same body) from a conflict (another body under the same id).
ALTER TABLE calculations ADD COLUMN request_hash text NOT NULL DEFAULT '';
