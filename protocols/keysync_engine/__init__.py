"""pEp KeySync as the pEp engine has it today: its codegen/ FSM files, read unchanged.

| file | what |
| --- | --- |
| codegen/sync.fsm | the engine's Sync: KeySync (the draft's, with the engine's changes), TrustSync, GroupSync |
| codegen/distribution.fsm | the engine's Distribution (stateless: KeyReset, ManagedGroup, Exploration) |
| codegen/storage.fsm | the engine's Storage protocol (stateless: MessageStorage) |
| asn.1/pEp.asn1 | the engine's type module PEP, where its generator finds it (one change to Hash, marked) |
| scenarios/ | the draft's KeySync scenarios (protocols/keysync/scenarios), run on the engine's KeySync |
| README.md | every difference from the draft, and what follows from each |

The files are laid out as in the engine's tree, so fsmc finds the type module as the
engine's generator does (compiler.py). A KeySync device is a device of the draft's
KeySync (protocols/keysync): the engine's fsm has the same conditions, actions, events
and messages, and one more message, ReceiverRating, which no machine sends or takes.
"""

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from protocols.keysync import PROTOCOL as DRAFT
from runtime.manifest import Manifest

if TYPE_CHECKING:
    from generated.keysync_engine.sync import KeySyncBindings
    from protocols.keysync.device import KeySyncDevice

__all__ = ["PROTOCOL"]

# The draft's manifest (devices, parties, expectations, invariants, user answers), with
# the engine's files.
PROTOCOL: Manifest = dataclasses.replace(
    DRAFT,
    name="keysync_engine",
    title="pEp KeySync, the pEp engine's codegen/sync.fsm",
    folder=Path(__file__).resolve().parent,
    source="codegen/sync.fsm",
    module="sync",
)


def _conforms(device: "KeySyncDevice") -> "KeySyncBindings":
    """mypy checks here that the draft's device implements the engine's KeySync bindings."""
    return device
