"""Headless subcommands of sma-log (registered by sma_log.cli)."""
