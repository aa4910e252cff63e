"""Core: the names every layer shares (result keys, statuses), the one error type, number checks, the typed
search settings (``settings.SearchSettings``, which a run's record keeps), text tables and the artefact
cache. Imports nothing from the other layers."""
