"""Follow one face through a video: dlib's detector now and then, its 68 landmarks on every frame.

Detection costs tens of milliseconds a frame, the shape predictor about one; a long video cannot afford the
detector on every frame. So the detector runs on the first frame and then every `detect_every` frames (and on
every such frame while no face is seen); between detections the landmarks of frame t are placed in the last
detector box moved by how far the landmarks (their centroid) moved from that detection to frame t - 1. A detection that
finds no face, or landmarks whose inner eye corners have shrunk or grown by more than `max_scale_change` since
the last detection (the shape predictor following something that is not the face), mark the face as lost.
"""

from __future__ import annotations

import numpy as np

from pamer.preprocess.face import Box, detect_faces, landmarks
from pamer.preprocess.register import eye_distance

# detection every 10 frames: a face that leaves is noticed within a third of a second at 30 fps, for about a
# tenth of the detector's cost per frame
DETECT_EVERY = 10
# the inner eye corners of a tracked face move apart or together by less than this between two detections
MAX_SCALE_CHANGE = 0.25
# the detector looks at the frame shrunk to this longer side (a face of 60 px and more at 640 x 360 is found)
DETECT_SIDES = (320,)


class FaceTracker:
    """Landmarks of the largest face, frame after frame (see the module docstring).

    Args:
        detect_every: run the detector on every `detect_every`-th frame given to `update`.
        max_scale_change: largest relative change of the inner-eye-corner distance between detections.
    """

    def __init__(self, detect_every: int = DETECT_EVERY, max_scale_change: float = MAX_SCALE_CHANGE) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        self.detect_every = detect_every
        self.max_scale_change = max_scale_change
        self.count = 0
        self.box: Box | None = None
        self.anchor: np.ndarray | None = None  # landmark centroid at the last detection
        self.last: np.ndarray | None = None  # landmark centroid in the previous frame
        self.eye_px = 0.0

    def update(self, gray: np.ndarray) -> np.ndarray | None:
        """The 68 landmarks (frame pixels) of the face in the next frame (grey uint8), or None when none is seen."""
        detect = self.count % self.detect_every == 0
        self.count += 1
        if detect:
            return self.redetect(gray)
        if self.box is None:
            return None
        # the detector box, moved as far as the landmarks have moved since the detection (up to the last frame)
        dx, dy = self.last - self.anchor
        left, top, right, bottom = self.box
        points = landmarks(gray, (left + dx, top + dy, right + dx, bottom + dy))
        self.last = points.mean(axis=0)
        if abs(eye_distance(points) / self.eye_px - 1) > self.max_scale_change:
            self.box = None
            return None
        return points

    def redetect(self, gray: np.ndarray) -> np.ndarray | None:
        """Run the detector on `gray` (the frame last given to `update`, when the caller doubts the tracked face):
        its face's landmarks, or None (the face is lost until a later detection finds one)."""
        boxes = detect_faces(gray, sides=DETECT_SIDES)
        if not boxes:
            self.box = None
            return None
        self.box = boxes[0]
        points = landmarks(gray, self.box)
        self.anchor = self.last = points.mean(axis=0)
        self.eye_px = eye_distance(points)
        return points
