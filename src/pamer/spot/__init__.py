"""Finding micro- and macro-expressions in long videos (spotting) and scoring what was found (MEGC)."""

from pamer.spot.intervals import MICRO_MAX_SECONDS, TYPES, Interval, expression_type

__all__ = ["MICRO_MAX_SECONDS", "TYPES", "Interval", "expression_type"]
