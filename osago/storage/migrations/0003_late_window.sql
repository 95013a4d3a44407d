-- Late offers: a calculation completes at its deadline (the user gets `completed`), and
-- closes at closes_at (deadline + late window): until then insurers' answers still reach
-- the user, marked late; at closing, exchanges still pending time out and polling stops.
ALTER TABLE calculations ADD COLUMN closes_at double precision;
ALTER TABLE calculations ADD COLUMN closed_at double precision;
UPDATE calculations SET closes_at = deadline_at, closed_at = completed_at;
ALTER TABLE calculations ALTER COLUMN closes_at SET NOT NULL;
CREATE INDEX calculations_open_by_closing ON calculations (closes_at) WHERE closed_at IS NULL;
