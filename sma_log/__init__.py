"""sma-log: bedside log for intrathecal nusinersen injections.

Kept deliberately light: importing the package must not import Textual,
sqlite-utils or pendulum, so ``sma-log --help`` starts fast.
"""

__version__ = "0.1.0"
