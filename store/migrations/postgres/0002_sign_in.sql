-- Sign-in: two-factor state per user, the lockout, sessions, password-reset links, recovery
-- codes and customers' token links. Every secret is stored as a SHA-256 digest, the TOTP secret
-- sealed by the server's key; nothing here can sign anyone in by being read.

CREATE TABLE user_security (
    user_id        TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    totp_secret    TEXT,
    totp_enabled   BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step BIGINT
);

-- Failed sign-ins in a row and the lock they caused, per subject: a user id, or for a login
-- that names no user `unknown:<sha-256 of the login>`, so unknown logins lock like known ones
-- and the lockout tells nobody which logins exist.
CREATE TABLE sign_in_attempts (
    subject       TEXT   NOT NULL PRIMARY KEY,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT
);

CREATE TABLE sessions (
    id              TEXT    NOT NULL PRIMARY KEY,
    token_hash      TEXT    NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device          TEXT    NOT NULL DEFAULT '',
    mfa             BOOLEAN NOT NULL DEFAULT FALSE,
    active_customer TEXT,
    created_at      BIGINT  NOT NULL,
    last_active_at  BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    revoked_at      BIGINT,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at);

CREATE TABLE password_resets (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);

CREATE TABLE recovery_codes (
    user_id   TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT    NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE company_links (
    id         TEXT    NOT NULL PRIMARY KEY,
    token_hash TEXT    NOT NULL,
    company_id TEXT    NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    revoked_at BIGINT,
    CONSTRAINT company_links_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX company_links_company_idx ON company_links (company_id);
