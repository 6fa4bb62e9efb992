-- Which server process is still feeding each live stream. The process that ingests a stream
-- touches its row every few seconds (src/streams/housekeeping.rs); a live stream whose row has
-- gone stale lost its process (a crash, a power cut) and is ended by whichever process sweeps
-- first. A stream ended anywhere is noticed by the process holding its publisher at its next
-- touch, which then disconnects the publisher: stopping works whichever process took the request.
CREATE TABLE stream_ingests (
    stream_id uuid PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
    seen_at   timestamptz NOT NULL DEFAULT now()
);
