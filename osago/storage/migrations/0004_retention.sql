-- Retention: closed calculations older than OSAGO_RETENTION_DAYS are deleted in batches,
-- oldest first; this index finds them without reading the open ones.
CREATE INDEX calculations_closed ON calculations (closed_at) WHERE closed_at IS NOT NULL;
