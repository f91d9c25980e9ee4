"""The Textual user interface: screens, widgets, modals and their styles.

Data flows one way: a key calls the Store (which commits), then the screen redraws
from what the Store returns. No screen holds clinical state of its own.
"""
