"""Numbered migrations: `NNNN_name.sql` here for SQLite (each also reflected in the top-level schema.sql),
`postgres/NNNN_name.sql` for PostgreSQL (reflected in schema_postgres.sql). Each runs in one transaction
with its version; tests/test_db.py checks that replaying them gives the schema files.

A SQLite migration runs with foreign keys ON, so dropping a table that others reference would delete or
refuse their rows. A change ALTER TABLE cannot make (a CHECK, a column's type or constraint, dropping a
referenced column) is SQLite's 12-step table rebuild, written as a migration whose FIRST line is

    -- cdnstore: foreign_keys=off

The runner (cdnstore/db/sqlite.py) then sets `PRAGMA foreign_keys=OFF` and `legacy_alter_table=ON` before
the transaction (SQLite ignores foreign_keys inside one), runs the file (CREATE TABLE x_new ...; INSERT INTO
x_new SELECT ... FROM x; DROP TABLE x; ALTER TABLE x_new RENAME TO x; then recreate x's indexes and
triggers), runs `PRAGMA foreign_key_check` before COMMIT (any dangling reference: ROLLBACK, nothing applied,
`ForeignKeyViolation`), and turns both pragmas back after. PostgreSQL alters tables in place: its migrations
need no marker.
"""
