"""Peer networks of the paper's comparison, each written from its paper and the authors' public code; importing
this package registers them (`pamer models` lists them, `create_model(name)` builds them)."""

from __future__ import annotations

from pamer.models.peers.base import FLOW_CHANNELS, PeerNetwork

# importing each network's module registers it
from pamer.models.peers.dssn import DSSN
from pamer.models.peers.dual_inception import DualInception, InceptionBlock
from pamer.models.peers.lbp_attention import LBPAttentionNet
from pamer.models.peers.madfn import MADFN
from pamer.models.peers.off_apexnet import OFFApexNet
from pamer.models.peers.ststnet import STSTNet

# the registered names of the peer networks
NAMES = ("dssn", "dual_inception", "off_apexnet", "ststnet")
# peers with no public code, designed from their papers' descriptions (each module docstring says what is whose);
# they read the apex image and its LBP image, or the motion image and the clip's action units, not optical flow
DESIGNED = ("lbp_attention", "madfn", "madfn_image")

__all__ = [
    "DESIGNED",
    "DSSN",
    "FLOW_CHANNELS",
    "LBPAttentionNet",
    "MADFN",
    "NAMES",
    "OFFApexNet",
    "DualInception",
    "InceptionBlock",
    "PeerNetwork",
    "STSTNet",
]
