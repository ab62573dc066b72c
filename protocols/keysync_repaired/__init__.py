"""pEp KeySync with the draft's defects repaired: the draft's FSM (protocols/keysync) with
the smallest change for each defect fsmc's explorer found in it (docs/exploration.md).

| file | what |
| --- | --- |
| keysync_repaired.fsm | the draft's FSM, each repair marked `repair N:` with its finding |
| pEp.asn1 | a link to the draft's type module (B.2), protocols/keysync/pEp.asn1: one file, so the two cannot drift |
| device.py | the draft's device, with the repairs' action and timeout handler |
| scenarios/ | the draft's scenarios (protocols/keysync/scenarios), run on the repaired FSM |
| README.md | the repairs, and what the explorer finds on them |

The invariants, parties and expectations are the draft's: a repair is judged by the same
checks that found the defect.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from protocols.keysync import PROTOCOL as DRAFT
from protocols.keysync.device import KeySyncDevice
from protocols.keysync.parties import make_devices as make_draft_devices
from protocols.keysync_repaired.device import RepairedDevice
from runtime.manifest import Manifest

__all__ = ["PROTOCOL", "RepairedDevice"]


def make_devices(parties: list[dict[str, Any]], rng: random.Random) -> dict[str, KeySyncDevice]:
    return make_draft_devices(parties, rng, RepairedDevice)


# The draft's manifest (parties, expectations, invariants, user answers), with this
# folder's FSM and devices.
PROTOCOL: Manifest = dataclasses.replace(
    DRAFT,
    name="keysync_repaired",
    title="pEp KeySync, the draft's FSM with its defects repaired",
    folder=Path(__file__).resolve().parent,
    make_devices=make_devices,
)
