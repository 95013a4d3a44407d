-- Why a job message failed, by its broker message id (stable across redeliveries and into
-- the DLQ): what `osago dlq list` shows next to each dead letter.
CREATE TABLE job_failures (
    message_id text PRIMARY KEY,
    reason     text NOT NULL,
    at         double precision NOT NULL
);
CREATE INDEX job_failures_at ON job_failures (at);
