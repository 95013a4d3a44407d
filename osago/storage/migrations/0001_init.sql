-- Calculations, one exchange per insurer, and the transactional outbox.
CREATE TABLE calculations (
    id            uuid PRIMARY KEY,
    user_id       text NOT NULL,
    request       jsonb NOT NULL,
    stub          jsonb NOT NULL,
    created_at    double precision NOT NULL,
    deadline_at   double precision NOT NULL,
    completed_at  double precision,
    event_seq     integer NOT NULL DEFAULT 0
);
-- The deadline keeper scans only open calculations, by deadline.
CREATE INDEX calculations_open_by_deadline ON calculations (deadline_at) WHERE completed_at IS NULL;

CREATE TABLE exchanges (
    correlation_id uuid PRIMARY KEY,
    calculation_id uuid NOT NULL REFERENCES calculations (id) ON DELETE CASCADE,
    insurer        text NOT NULL,
    insurer_name   text NOT NULL,
    remote_id      text,
    outcome        text,
    premium        double precision,
    message        text,
    ready_at       double precision,
    received_at    double precision,
    detail         jsonb,
    UNIQUE (calculation_id, insurer)
);

CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    destination    text NOT NULL,
    body           bytea NOT NULL,
    headers        jsonb NOT NULL,
    calculation_id uuid NOT NULL,
    created_at     double precision NOT NULL,
    leased_until   double precision,
    sent_at        double precision
);
-- The relay's claim query walks only unsent rows.
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_unsent_by_calculation ON outbox (calculation_id) WHERE sent_at IS NULL;
