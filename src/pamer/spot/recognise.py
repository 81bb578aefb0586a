"""Recognise each spotted micro-expression with a trained model (`pamer.predict.Recognizer`).

The interval's onset and apex frames are read again from the video (a second pass that keeps only those frames),
and the recognizer classifies the pair: it registers the apex onto the onset before it subtracts them
(`pamer.preprocess.register`), or, for a model of the apex alone, reads the apex alone.
"""

from __future__ import annotations

from pamer.predict import Prediction, Recognizer
from pamer.spot.source import Source
from pamer.spot.spotter import SpotResult


def recognise(result: SpotResult, recognizer: Recognizer, source: Source) -> dict[int, Prediction]:
    """The prediction for each micro-expression of `result`, keyed by its apex frame number.

    Raises:
        PredictError: an interval whose frames the model cannot read (no face at its onset or apex).
    """
    # an apex on the onset frame leaves nothing to subtract: such an interval is left unrecognised
    micro = [i for i in result.intervals if i.type == "micro" and i.apex is not None and i.apex > i.onset]
    wanted = {n for i in micro for n in (i.onset, i.apex)}
    frames = {}
    if wanted:
        last = max(wanted)
        for number, frame in source.read():
            if number in wanted:
                frames[number] = frame
            if number >= last:
                break
    predictions = {}
    for interval in micro:
        if recognizer.card.representation == "apex":
            predictions[interval.apex] = recognizer.predict([frames[interval.apex]], apex=0)
        else:
            predictions[interval.apex] = recognizer.predict([frames[interval.onset], frames[interval.apex]], 0, 1)
    return predictions
