"""Library form of the agent: renew in a background thread, then swap live TLS contexts."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pkiforge.client.agent import AgentConfig, Connect, Hook, RenewalAgent
from pkiforge.client.models import Certificate
from pkiforge.client.tls import Identity, LiveServerContext, swap_certificate, trust_bundle
from pkiforge.durations import parse_duration
from pkiforge.errors import InvalidInput
from pkiforge.renewal import DEFAULT_FRACTION, Backoff, RenewalPolicy

__all__ = ["AutoRenewal", "RenewalOptions", "enable_for_client", "start_auto_renewal"]

log = logging.getLogger("pkiforge.agent")
Swappable = ssl.SSLContext | LiveServerContext


@dataclass(frozen=True)
class RenewalOptions:
    """When to renew and what to refresh afterwards."""

    renew_before: dt.timedelta | None = None
    fraction: float = DEFAULT_FRACTION
    jitter: float = 0.1
    check_interval: float = 60.0
    backoff: Backoff = field(default_factory=Backoff)
    reuse_key: bool = False
    bundle_interval: float | None = 600.0  # CA bundle fetches between renewals (None: never)


class AutoRenewal:
    """A running background renewal; `stop()` ends it (the files stay as they are)."""

    def __init__(self, agent: RenewalAgent) -> None:
        self.agent = agent
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=agent.run, args=(self._stop,), name="pkiforge-renewal", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop checking and wait for a renewal in progress to finish."""
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> AutoRenewal:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_auto_renewal(
    identity: Identity,
    connect: Connect,
    options: RenewalOptions,
    *,
    contexts: Sequence[Swappable] = (),
    on_renew: Hook | None = None,
) -> AutoRenewal:
    """Start renewing `identity` in a thread; after each renewal swap `contexts`, then call back.

    Raises:
        ValueError: the options are out of range.
    """
    policy = RenewalPolicy(options.fraction, options.renew_before, options.jitter)
    config = AgentConfig(
        identity,
        policy,
        options.backoff,
        options.check_interval,
        options.reuse_key,
        bundle_interval=options.bundle_interval,
    )

    def reload() -> None:
        for ctx in contexts:
            if isinstance(ctx, LiveServerContext):
                ctx.reload()  # a new context: the new pair and the current bundle
            else:
                swap_certificate(ctx, identity)
                trust_bundle(ctx, identity)

    def after(cert: Certificate) -> None:
        reload()
        if on_renew is not None:
            on_renew(cert)

    return AutoRenewal(RenewalAgent(config, connect, on_renew=after, on_bundle=reload))


def enable_for_client(
    identity: Identity | None,
    own_context: ssl.SSLContext | None,
    connect: Connect,
    renew_before: dt.timedelta | str | None,
    *,
    on_renew: Hook | None,
    contexts: Sequence[Swappable],
    options: RenewalOptions | None,
) -> AutoRenewal:
    """What `PkiClient.enable_auto_renewal` and its async twin do: renew the client's identity,
    swap the client's own TLS context and `contexts`, then call back.

    Raises:
        InvalidInput: the client has no identity; ValueError: bad timing options.
    """
    if identity is None:
        raise InvalidInput("auto-renewal needs an identity", field="identity")
    options = options or RenewalOptions()
    if renew_before is not None:
        margin = parse_duration(renew_before) if isinstance(renew_before, str) else renew_before
        options = replace(options, renew_before=margin)
    own = [own_context] if own_context is not None else []
    return start_auto_renewal(
        identity, connect, options, contexts=[*own, *contexts], on_renew=on_renew
    )
