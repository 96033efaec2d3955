-- Portcullis user store, SQLite flavour. Timestamps are Unix milliseconds (INTEGER), JSON is TEXT.
-- Constraint names follow PostgreSQL's convention so that errors map by the same names on both.

-- The change feed: one global counter bumped by every write transaction (its first statement,
-- which also takes SQLite's write lock before anything is read), and one row per changed entity.
CREATE TABLE store_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO store_version (id, version) VALUES (1, 0);

CREATE TABLE changes (
    version   INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (version, kind, entity_id)
);

CREATE TABLE companies (
    id           TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    account_type TEXT    NOT NULL,
    parent_id    TEXT    REFERENCES companies (id) ON DELETE RESTRICT,
    user_limit   INTEGER,
    attrs        TEXT    NOT NULL DEFAULT '{}',
    created_at   INTEGER NOT NULL,
    CONSTRAINT companies_user_limit_check CHECK (user_limit IS NULL OR user_limit >= 0),
    CONSTRAINT companies_parent_check CHECK (parent_id IS NULL OR parent_id <> id)
);
CREATE INDEX companies_parent_idx ON companies (parent_id);

CREATE TABLE permission_groups (
    name        TEXT    NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL DEFAULT '',
    features    TEXT    NOT NULL DEFAULT '[]',
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX permission_groups_one_default ON permission_groups (is_default) WHERE is_default;

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    company_id    TEXT    NOT NULL REFERENCES companies (id) ON DELETE RESTRICT,
    login         TEXT    NOT NULL,
    email         TEXT,
    name          TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    flags         TEXT    NOT NULL DEFAULT '[]',
    addons        TEXT    NOT NULL DEFAULT '[]',
    group_name    TEXT    REFERENCES permission_groups (name) ON UPDATE CASCADE ON DELETE RESTRICT,
    attrs         TEXT    NOT NULL DEFAULT '{}',
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CONSTRAINT users_login_key UNIQUE (login),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_company_idx ON users (company_id, id);
CREATE INDEX users_group_idx ON users (group_name);

-- Companies a user may switch to besides its own, with an optional role there (one role per company).
CREATE TABLE user_companies (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    company_id TEXT NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    role       TEXT,
    PRIMARY KEY (user_id, company_id)
);
CREATE INDEX user_companies_company_idx ON user_companies (company_id);

CREATE TABLE visitor_grants (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_company TEXT    NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    company_id   TEXT    NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    locations    TEXT    NOT NULL DEFAULT '[]',
    actors       TEXT    NOT NULL DEFAULT '[]',
    status       TEXT    NOT NULL,
    requested_at INTEGER NOT NULL,
    decided_by   TEXT,
    decided_at   INTEGER,
    revoked_by   TEXT,
    revoked_at   INTEGER,
    expires_at   INTEGER,
    CONSTRAINT visitor_grants_status_check
        CHECK (status IN ('requested', 'approved', 'refused', 'revoked')),
    CONSTRAINT visitor_grants_company_check CHECK (from_company <> company_id)
);
CREATE INDEX visitor_grants_user_idx ON visitor_grants (user_id, status);
CREATE INDEX visitor_grants_company_idx ON visitor_grants (company_id, status);

CREATE TABLE invitations (
    id          TEXT    NOT NULL PRIMARY KEY,
    company_id  TEXT    NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    flags       TEXT    NOT NULL DEFAULT '[]',
    addons      TEXT    NOT NULL DEFAULT '[]',
    group_name  TEXT,
    attrs       TEXT    NOT NULL DEFAULT '{}',
    token_hash  TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    invited_by  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER,
    user_id     TEXT,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_status_check CHECK (status IN ('pending', 'accepted', 'revoked'))
);
CREATE INDEX invitations_company_idx ON invitations (company_id, created_at);

CREATE TABLE api_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- No foreign keys on purpose: audit rows outlive the users and companies they mention.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    actor      TEXT,
    company_id TEXT,
    action     TEXT    NOT NULL,
    target     TEXT,
    outcome    TEXT    NOT NULL,
    details    TEXT    NOT NULL DEFAULT '{}',
    version    INTEGER
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, id);
CREATE INDEX audit_log_company_idx ON audit_log (company_id, id);
CREATE INDEX audit_log_target_idx ON audit_log (target, id);
