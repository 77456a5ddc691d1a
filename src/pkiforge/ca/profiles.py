"""Certificate profiles: EKUs and validity bounds, from configuration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from pkiforge.errors import InvalidInput
from pkiforge.x509.extensions import eku_oids

DEFAULT_PROFILE = "service"  # a request that names none, unless an enrollment token has its own


@dataclass(frozen=True)
class Profile:
    """What a leaf certificate of this kind may be."""

    name: str
    ekus: tuple[str, ...]
    default_validity: dt.timedelta
    max_validity: dt.timedelta
    allow_wildcards: bool = False

    def __post_init__(self) -> None:
        eku_oids(self.ekus)  # unknown EKU names fail at configuration time
        if self.default_validity > self.max_validity:
            raise InvalidInput(
                f"profile {self.name!r}: default validity exceeds its maximum", field="profiles"
            )


def get_profile(profiles: Mapping[str, Profile], name: str) -> Profile:
    """Look a profile up by name.

    Raises:
        InvalidInput: no such profile.
    """
    try:
        return profiles[name]
    except KeyError:
        raise InvalidInput(
            f"unknown profile {name!r}: use one of {', '.join(sorted(profiles))}", field="profile"
        ) from None
