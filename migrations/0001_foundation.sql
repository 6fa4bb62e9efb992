-- Siaran's foundation: accounts, streams, donations, comments and refresh tokens.
-- Later features add their own migrations; never edit one that has landed.

-- Keeps updated_at true without relying on every query to set it.
CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username      text NOT NULL CHECK (username ~ '^[A-Za-z0-9_.-]{3,30}$'),
    email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash text NOT NULL,
    first_name    text NOT NULL DEFAULT '' CHECK (char_length(first_name) <= 150),
    last_name     text NOT NULL DEFAULT '' CHECK (char_length(last_name) <= 150),
    is_active     boolean NOT NULL DEFAULT true,
    is_staff      boolean NOT NULL DEFAULT false,
    is_superuser  boolean NOT NULL DEFAULT false,
    is_streamer   boolean NOT NULL DEFAULT false,
    last_login    timestamptz,
    date_joined   timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Case-insensitive uniqueness: "Alice" and "alice" are the same account.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE streams (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    streamer_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 255),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    is_active   boolean NOT NULL DEFAULT false,
    started_at  timestamptz,
    ended_at    timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX streams_streamer_idx ON streams (streamer_id, created_at DESC);
CREATE INDEX streams_live_idx ON streams (started_at DESC) WHERE is_active;
CREATE TRIGGER streams_updated_at BEFORE UPDATE ON streams FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE donations (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    transaction_id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    stream_id      uuid NOT NULL REFERENCES streams (id) ON DELETE RESTRICT,
    donor_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    amount         numeric(14, 2) NOT NULL CHECK (amount > 0),
    message        text NOT NULL DEFAULT '' CHECK (char_length(message) <= 255),
    payment_method text NOT NULL CHECK (payment_method IN ('midtrans', 'bank_transfer')),
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'completed', 'failed', 'expired', 'rejected', 'refunded')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX donations_stream_idx ON donations (stream_id, created_at DESC);
CREATE INDEX donations_donor_idx ON donations (donor_id, created_at DESC);
CREATE INDEX donations_pending_idx ON donations (created_at) WHERE status = 'pending';
CREATE TRIGGER donations_updated_at BEFORE UPDATE ON donations FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE comments (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    stream_id  uuid NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content    text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 500),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_stream_idx ON comments (stream_id, created_at DESC, id DESC);
CREATE TRIGGER comments_updated_at BEFORE UPDATE ON comments FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Opaque refresh tokens, stored as SHA-256 hashes. Each login starts a family; every refresh
-- uses up one token and issues its successor in the same family. Presenting a used token again
-- means it was stolen (or replayed): the whole family is revoked.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
