-- Stream keys: one per streamer, shown once, stored as selector + SHA-256 of the secret part.
-- A key reads `sk_<selector>_<secret>`: the selector finds the row, the secret's hash is then
-- compared in constant time. Rotating replaces the row.
CREATE TABLE stream_keys (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    selector    text NOT NULL UNIQUE CHECK (selector ~ '^[0-9a-f]{16}$'),
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The streamer's newest stream that has not ended is the one a publish goes live on.
CREATE INDEX streams_open_idx ON streams (streamer_id, created_at DESC) WHERE ended_at IS NULL;
