"""``python -m sma_log`` — the same as the ``sma-log`` command."""

from sma_log.cli import main

if __name__ == "__main__":
    main(prog_name="sma-log")
