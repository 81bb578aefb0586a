"""Peer networks of the paper's comparison, each written from its paper and the authors' public code; importing
this package registers them (`pamer models` lists them, `create_model(name)` builds them)."""

from __future__ import annotations

from pamer.models.peers.base import FLOW_CHANNELS, PeerNetwork

# importing each network's module registers it
from pamer.models.peers.dssn import DSSN
from pamer.models.peers.dual_atme import DualATME
from pamer.models.peers.dual_inception import DualInception, InceptionBlock
from pamer.models.peers.fgrmer import FGRMER
from pamer.models.peers.off_apexnet import OFFApexNet
from pamer.models.peers.ststnet import STSTNet

# the registered names of the peer networks that read one flow image (u, v, strain)
NAMES = ("dssn", "dual_inception", "off_apexnet", "ststnet")
# the peers that declare their own inputs, loss or fold statistics (`pamer.models.method`)
METHOD_NAMES = ("dual_atme", "fgrmer")

__all__ = [
    "DSSN",
    "FGRMER",
    "FLOW_CHANNELS",
    "METHOD_NAMES",
    "NAMES",
    "OFFApexNet",
    "DualATME",
    "DualInception",
    "InceptionBlock",
    "PeerNetwork",
    "STSTNet",
]
