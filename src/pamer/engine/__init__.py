"""pamer.engine."""
