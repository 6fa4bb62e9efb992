-- Real time: the event log every stream socket is served from, and OBS overlay tokens.

-- The last event id handed out per stream. Taking the next id locks this row until the
-- publishing transaction ends, so ids are gapless and commit in id order: a reader that has seen
-- id N knows that N + 1 is the next event and can ask for exactly what it missed.
CREATE TABLE live_event_seqs (
    stream_id uuid PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
    last_id   bigint NOT NULL CHECK (last_id > 0)
);

-- Every event published on a stream, kept for resuming sockets (`last_event_id`) and for
-- repairing gaps after a server process lost its Redis subscription. Pruned to the last hour
-- (and never below the last 1,000 events of a stream) by the server, see src/live/events.rs.
CREATE TABLE live_events (
    stream_id uuid NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    id        bigint NOT NULL CHECK (id > 0),
    kind      text NOT NULL,
    -- The event's `data` object, exactly as sent to clients.
    data      text NOT NULL,
    ts        timestamptz NOT NULL,
    PRIMARY KEY (stream_id, id)
);
CREATE INDEX live_events_ts_idx ON live_events (ts);

-- One overlay token per streamer: the secret part of the OBS browser-source URL. Only its
-- SHA-256 is stored; `hint` is its last four characters, to show which one is in use.
CREATE TABLE overlay_tokens (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    hint       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
