-- A calculation's timeline reads its outbox rows (jobs and events, sent or not).
CREATE INDEX outbox_by_calculation ON outbox (calculation_id);
