"""Finding micro- and macro-expressions in long videos (spotting) and scoring what was found (MEGC)."""

from pamer.spot.intervals import MICRO_MAX_SECONDS, TYPES, Interval, expression_type
from pamer.spot.source import SpotError
from pamer.spot.spotter import SpotResult, spot, spot_video

__all__ = ["MICRO_MAX_SECONDS", "TYPES", "Interval", "SpotError", "SpotResult", "expression_type", "spot", "spot_video"]
