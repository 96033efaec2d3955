-- The session an API key was created with, when a signed-in user made it: a password reset
-- ends the user's sessions and revokes the keys they created (a stolen session cannot keep
-- a way in through a key it made).
ALTER TABLE api_keys ADD COLUMN session_id TEXT;
CREATE INDEX api_keys_session_idx ON api_keys (session_id);
