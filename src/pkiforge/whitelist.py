"""Load `<home>/service_whitelist.yaml` (the origin documents' shape) into a `Whitelist`.

```yaml
services:
  - service_id: billing
    max_certificates: 3
    allowed_operations: [request, renew, revoke, download, register, update, discover, list]
    allowed_names: ["billing.internal", "*.billing.internal", "IP:10.1.0.0/16"]
    max_validity: 90d
    profiles: [service, server]
    server_generated_keys: false
  - service_id: admin-cli
    allowed_operations: [admin]
patterns:
  - pattern: "test-*"
    max_certificates: 1
    allowed_operations: [request, renew, revoke]
    allowed_names: ["{service_id}.test.internal"]
```
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pkiforge.ca.authorization import Operation, ServicePolicy, Whitelist
from pkiforge.durations import parse_duration

WHITELIST_FILE = "service_whitelist.yaml"


class _Rights(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allowed_operations: list[Operation]
    max_certificates: int | None = Field(default=None, ge=0)
    allowed_names: list[str] = Field(default_factory=list)
    max_validity: dt.timedelta | None = None
    profiles: list[str] | None = None
    server_generated_keys: bool = False

    @field_validator("max_validity", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value)
        if isinstance(value, int):
            return dt.timedelta(days=value)
        return value

    def policy(self) -> ServicePolicy:
        return ServicePolicy(
            operations=frozenset(self.allowed_operations),
            max_certificates=self.max_certificates,
            allowed_names=tuple(self.allowed_names),
            max_validity=self.max_validity,
            profiles=tuple(self.profiles) if self.profiles is not None else None,
            server_generated_keys=self.server_generated_keys,
        )


class _ServiceEntry(_Rights):
    service_id: str


class _PatternEntry(_Rights):
    pattern: str


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    services: list[_ServiceEntry] = Field(default_factory=list)
    patterns: list[_PatternEntry] = Field(default_factory=list)


def parse_whitelist(data: Any, source: str = WHITELIST_FILE) -> Whitelist:
    """Validate parsed YAML.

    Raises:
        ValueError: naming the file, the entry and the problem.
    """
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping with `services` and `patterns`")
    try:
        parsed = _File.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{source}: {where}: {first['msg']}") from None
    services: dict[str, ServicePolicy] = {}
    for entry in parsed.services:
        if entry.service_id in services:
            raise ValueError(f"{source}: service {entry.service_id!r} is listed twice")
        services[entry.service_id] = entry.policy()
    patterns = tuple((p.pattern, p.policy()) for p in parsed.patterns)
    return Whitelist(services, patterns)


def load_whitelist(home: Path) -> Whitelist | None:
    """The whitelist in `home`, or None when there is no file (then nobody has any rights).

    Raises:
        ValueError: the file is not valid YAML or not a valid whitelist.
    """
    path = home / WHITELIST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    return parse_whitelist(data, str(path))
