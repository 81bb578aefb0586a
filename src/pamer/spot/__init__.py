"""Finding micro- and macro-expressions in long videos (spotting) and scoring what was found (MEGC).

`pamer.spot.spot(video)` returns the intervals found; the package itself is callable too, so `pamer.spot(video)`
is the same call.
"""

import sys
import types

from pamer.spot.intervals import MICRO_MAX_SECONDS, TYPES, Interval, expression_type
from pamer.spot.source import SpotError
from pamer.spot.spotter import SpotResult, spot, spot_video

__all__ = [
    "MICRO_MAX_SECONDS",
    "TYPES",
    "Interval",
    "SpotError",
    "SpotResult",
    "expression_type",
    "spot",
    "spot_video",
]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs) -> list[Interval]:
        return spot(*args, **kwargs)


# `pamer.spot(video, ...)`: the package name and the function name are one, so the package answers calls
sys.modules[__name__].__class__ = _CallablePackage
