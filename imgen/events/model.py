"""The event model every reader produces: an event and its physics objects (jets, leptons, photons, taus,
missing transverse energy), in the units and conventions of CMS open data (GeV, phi in (-pi, pi])."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

#: Object groups read from an event, in drawing order.
OBJECT_GROUPS = ("jet", "tau", "photon", "electron", "muon")
LEPTONS = ("electron", "muon")
#: CSV values below this mean "no b-tag score" (producers write -100).
NO_BTAG_BELOW = 0.0
#: Event numbers become file names, so they are restricted to these characters.
EVENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")
TWO_PI = 2.0 * math.pi


class PhysicsObject(NamedTuple):
    """One reconstructed object. Energies in GeV; ``btag`` is the CSV score or None."""

    kind: str
    pt: float
    eta: float
    phi: float
    btag: float | None = None
    tight_id: bool = False
    tight_iso: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """One collision event, validated: every number is finite, every pt >= 0."""

    event_id: str
    objects: tuple[PhysicsObject, ...] = ()
    met: float | None = None
    met_phi: float | None = None
    #: leptons whose phi was taken from atan2(py, px) (see module docstring)
    phi_from_momentum: int = 0
    #: run and luminosity block, recorded in the manifest; None when the input has none
    run: int | None = None
    lumi: int | None = None
    #: the event's weight for training and metrics (``transfer --event-weight``), recorded in the manifest's
    #: ``weight`` column, and where it came from (``weight_source``: ``genWeight`` of NanoAOD, ``xsec`` of the
    #: JSON sample); None when the input has none. Bookkeeping as run and lumi: never checked here (transfer
    #: refuses a non-finite weight naming the manifest row)
    weight: float | None = None
    weight_source: str | None = None

    def of_kind(self, kind: str) -> list[PhysicsObject]:
        return [o for o in self.objects if o.kind == kind]


def wrap_phi(phi: float) -> float:
    """phi in [-pi, pi)."""
    if -math.pi <= phi < math.pi:
        return phi
    return (phi + math.pi) % TWO_PI - math.pi
