"""Research exports: CSV folder, JSON document, SQLite copy, REDCap files.

Every format is de-identified unless ``--identifiers`` is given (see
:mod:`sma_log.export.common` for the rules) and writes only 0600 files.
"""
