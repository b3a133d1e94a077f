"""Numbered migrations: `NNNN_name.sql` here for SQLite, `postgres/NNNN_name.sql` for PostgreSQL, one number
for one change on both engines. Each runs in one transaction with its version. They are the only place a
schema change is written: the schema files a new database gets (the top-level schema.sql,
cdnstore/schema_postgres.sql) are generated from them by `python3 dev.py schema` (cdnstore/db/schema.py), and
tests/test_db.py fails while one is stale and checks that replaying the migrations gives the same schema.

They are also where the schema is explained: a comment block directly above a CREATE TABLE, INDEX, TRIGGER
or FUNCTION, or above an ALTER TABLE ... ADD COLUMN, says what it makes and is carried into the schema files
with it (no blank line between them). Say there what a table or column is for; what the migration does to
old rows (backfills, why a rebuild) goes in comments anywhere else, which stay here.

A SQLite migration runs with foreign keys ON, so dropping a table that others reference would delete or
refuse their rows. A change ALTER TABLE cannot make (a CHECK, a column's type or constraint, dropping a
referenced column) is SQLite's 12-step table rebuild, written as a migration whose FIRST line is

    -- cdnstore: foreign_keys=off

The runner (cdnstore/db/sqlite.py) then sets `PRAGMA foreign_keys=OFF` and `legacy_alter_table=ON` before
the transaction (SQLite ignores foreign_keys inside one), runs the file (CREATE TABLE x_new ...; INSERT INTO
x_new SELECT ... FROM x; DROP TABLE x; ALTER TABLE x_new RENAME TO x; then recreate x's indexes and
triggers), runs `PRAGMA foreign_key_check` before COMMIT (any dangling reference: ROLLBACK, nothing applied,
`ForeignKeyViolation`), and turns both pragmas back after. A rebuilt table keeps only the comment above its
new CREATE TABLE in the schema file: say everything about the table again there. PostgreSQL alters tables in
place: its migrations need no marker (and the generator folds their ALTER TABLEs into the CREATE TABLE).
"""
