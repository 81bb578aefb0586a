"""pamer.preprocess."""
