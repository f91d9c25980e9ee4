"""Storage: one SQLite file through sqlite-utils (schema, migrations, queries).

Import :func:`sma_log.storage.db.open_store` to open a database.
"""
