"""pamer.report."""
