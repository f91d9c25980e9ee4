"""Modal dialogs. Escape closes each one without saving."""
