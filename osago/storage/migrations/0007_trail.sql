-- A calculation's timeline shows what the worker did in each exchange (submit, each poll) and
-- each frame the notifier pushed to the user's browser: written late, in batches, best effort.
ALTER TABLE exchanges ADD COLUMN steps jsonb;
-- No foreign key: pushes are written at the rate frames go out, and a push noted after its
-- calculation was purged must not fail the batch; retention deletes them by calculation.
CREATE TABLE pushes (
    calculation_id uuid NOT NULL,
    seq integer NOT NULL,
    type text NOT NULL,
    at double precision NOT NULL
);
CREATE INDEX pushes_by_calculation ON pushes (calculation_id);
