-- A client that retries a refresh after losing the answer presents the token it just used again.
-- Within a short grace, from the same client, that gets a new pair instead of revoking the
-- session: the row remembers which token replaced it and a fingerprint of the client that used
-- it (SHA-256 of its address and User-Agent), so the retry can be told from a stolen copy.
ALTER TABLE refresh_tokens
    ADD COLUMN replaced_by    uuid REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    ADD COLUMN used_by_client bytea;
