"""pamer.models."""
