-- A permission group's features in the store define it entirely. Groups written before this
-- held only what they added to the policy folder's group of the same name: they stay marked
-- (defined = FALSE) until the server, which reads the folder, writes their whole definition
-- once (UserStore::define_group). Groups created from now on are defined at creation.
ALTER TABLE permission_groups ADD COLUMN defined BOOLEAN NOT NULL DEFAULT FALSE;
