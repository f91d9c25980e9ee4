"""The domain core: records, rules, schedule arithmetic and report statistics.

Nothing in this package imports Textual or SQLite (a test checks it). It may use
pendulum for time arithmetic and python-ulid for record identifiers.
"""
