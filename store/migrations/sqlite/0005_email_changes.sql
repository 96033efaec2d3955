-- A changed e-mail address waits here until the link sent to it is used: until then the old
-- address stays in force (sign-in, reset links). One pending change per user; the token is
-- stored as its SHA-256 digest.
CREATE TABLE email_changes (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    new_email  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX email_changes_user_idx ON email_changes (user_id);
