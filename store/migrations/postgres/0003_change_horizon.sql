-- Change-feed pruning: the highest version whose change rows were deleted. A reader whose
-- cursor is below it has missed rows and must drop everything it cached.
ALTER TABLE store_version ADD COLUMN pruned_through BIGINT NOT NULL DEFAULT 0;
