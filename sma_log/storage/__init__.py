"""Storage: one SQLite file through sqlite3 (migrations through sqlite-utils): schema, queries.

Open a database with :meth:`sma_log.storage.store.Store.open`.
"""
