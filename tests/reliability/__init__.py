"""Reliability and security suite (issue 5): faults, load and hostile input."""
