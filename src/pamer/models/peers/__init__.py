"""Peer networks of the paper's comparison, each written from its paper and the authors' public code; importing
this package registers them (`pamer models` lists them, `create_model(name)` builds them)."""

from __future__ import annotations

from pamer.models.peers.base import FLOW_CHANNELS, PeerNetwork

# importing each network's module registers it
from pamer.models.peers.dssn import DSSN
from pamer.models.peers.dual_inception import DualInception, InceptionBlock
from pamer.models.peers.off_apexnet import OFFApexNet
from pamer.models.peers.ststnet import STSTNet

# the registered names of the peer networks
NAMES = ("dssn", "dual_inception", "off_apexnet", "ststnet")

__all__ = [
    "DSSN",
    "FLOW_CHANNELS",
    "NAMES",
    "OFFApexNet",
    "DualInception",
    "InceptionBlock",
    "PeerNetwork",
    "STSTNet",
]
