-- The entity a session acts for after `POST /v1/auth/switch` is named by the policy folder
-- (`sign_in.switch_attribute` / `switch_context`), not by the store: the column says what it
-- is, not which folder it came from.
ALTER TABLE sessions RENAME COLUMN active_customer TO switched_to;
