-- 0014: a placeholder for the migration another branch of this round adds under this number (the numbers
-- must run without a gap, and this branch's own is 0016). It changes nothing; delete it when merging.
SELECT 1;  -- (a file of comments alone is an empty query, which asyncpg cannot run)
