-- Passkeys (WebAuthn credentials) and the ceremonies that register them or sign in with them.
-- A passkey's credential is the server's verified record of it (public key, signature counter),
-- kept opaque: nothing here signs anyone in without the authenticator's private key. A
-- ceremony's state waits between its two requests under the SHA-256 digest of its single-use
-- token, and is deleted when taken or after its time.
CREATE TABLE passkeys (
    id            TEXT    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    handle        TEXT    NOT NULL,
    credential_id TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    credential    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    CONSTRAINT passkeys_credential_id_key UNIQUE (credential_id)
);
CREATE INDEX passkeys_user_idx ON passkeys (user_id);

CREATE TABLE passkey_ceremonies (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    kind       TEXT    NOT NULL,
    user_id    TEXT    REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX passkey_ceremonies_expires_idx ON passkey_ceremonies (expires_at);
