"""Core: the names every layer shares (result keys, statuses), the one error type, number checks, text
tables and the artefact cache. Imports nothing from the other layers."""
