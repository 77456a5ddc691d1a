"""`pkiforge agent` keeps a service's certificate fresh; `pkiforge enroll` gets the first one."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from pkiforge.cli.output import err
from pkiforge.cli.remote import trust_hint
from pkiforge.cli.usage import exclusive, usage_error
from pkiforge.durations import parse_duration
from pkiforge.errors import AuthenticationFailed, InvalidInput, NotFound, UntrustedServer

if TYPE_CHECKING:  # the client (httpx) is imported by these two commands only, when they run
    from pkiforge.client.agent import Renewer
    from pkiforge.client.hooks import ExecHook, SignalHook
    from pkiforge.client.tls import Identity

CertOpt = Annotated[Path, typer.Option("--cert", help="Certificate chain file (PEM, leaf first).")]
KeyOpt = Annotated[Path, typer.Option("--key", help="Private key file (PEM, kept 0600).")]
ServerOpt = Annotated[str, typer.Option("--server", help="pkiforge API, e.g. https://pki:8443.")]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", "--cacert", help="CA bundle (default: ca.pem next to --cert)."),
]


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
    app.command("enroll")(enroll)


def _identity(cert: Path, key: Path, ca: Path | None) -> Identity:
    from pkiforge.client.tls import Identity

    return Identity(cert, key, ca or cert.parent / "ca.pem")


def _require_files(identity: Identity, *, ca_given: bool) -> None:
    """Fail at start, not on the day a renewal is due, when a file the agent needs is missing.

    Raises:
        NotFound: naming the option and the path.
    """
    for option, path in (("--cert", identity.cert), ("--key", identity.key), ("--ca", identity.ca)):
        if not path.is_file():
            hint = "" if ca_given or option != "--ca" else " (the default: ca.pem beside --cert)"
            raise NotFound(f"{option} {path} does not exist{hint}", field=option)


def _seconds(text: str, option: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise InvalidInput(str(exc), field=option) from None


def _hook(
    ctx: typer.Context, command: str | None, sig: str | None, pid_file: Path | None
) -> ExecHook | SignalHook | None:
    from pkiforge.client.hooks import exec_hook, parse_signal, signal_hook

    exclusive(ctx, exec=command, signal=sig)
    exclusive(ctx, exec=command, pid_file=pid_file)
    if command:
        return exec_hook(command)
    if sig or pid_file:
        if not (sig and pid_file):
            raise usage_error("--signal and --pid-file go together", ctx)
        try:
            hook = signal_hook(parse_signal(sig), pid_file)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="--signal") from None
        try:
            hook.check()  # before any renewal: fail closed, nothing renewed
        except ValueError as exc:
            raise InvalidInput(f"--pid-file {exc}", field="--pid-file") from None
        return hook
    return None


def agent(
    ctx: typer.Context,
    cert: CertOpt,
    key: KeyOpt,
    server: ServerOpt,
    ca: CaOpt = None,
    renew_before: Annotated[
        str | None,
        typer.Option(
            help="Renew this long before expiry, e.g. 30d (default: the server's "
            "renew_before_expiry_days, not before 2/3 of the lifetime)."
        ),
    ] = None,
    exec_cmd: Annotated[
        str | None, typer.Option("--exec", help="Command to run after each renewal.")
    ] = None,
    sig: Annotated[
        str | None, typer.Option("--signal", help="Signal to send after renewal, e.g. HUP.")
    ] = None,
    pid_file: Annotated[Path | None, typer.Option(help="Whom to send --signal to.")] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Renew if due, then exit 0 (cron, systemd timers).")
    ] = False,
    jitter: Annotated[float, typer.Option(min=0, max=0.99, help="Spread renewals.")] = 0.1,
    check_interval: Annotated[str, typer.Option(help="How often to look.")] = "60s",
    max_backoff: Annotated[str, typer.Option(help="Longest wait between retries.")] = "5m",
    attempts: Annotated[int, typer.Option(min=1, help="--once: tries before failing.")] = 5,
    reuse_key: Annotated[bool, typer.Option(help="Keep the key instead of a new one.")] = False,
    bundle_interval: Annotated[
        str,
        typer.Option(
            help="How often to fetch the CA bundle between renewals (a rotated CA's successor "
            "arrives this way); 0: with renewals only."
        ),
    ] = "10m",
) -> None:
    """Keep a service's certificate fresh: renew over mTLS before expiry, crash-safely."""
    from pkiforge.client.agent import AgentConfig, Outcome, RenewalAgent
    from pkiforge.client.sync import PkiClient
    from pkiforge.renewal import Backoff, RenewalPolicy

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        policy = RenewalPolicy(
            renew_before=parse_duration(renew_before) if renew_before else None, jitter=jitter
        )
    except ValueError as exc:
        raise InvalidInput(str(exc), field="--renew-before") from None
    hook = _hook(ctx, exec_cmd, sig, pid_file)  # usage errors first, then missing files
    identity = _identity(cert, key, ca)
    _require_files(identity, ca_given=ca is not None)
    config = AgentConfig(
        identity,
        policy,
        Backoff(cap=_seconds(max_backoff, "--max-backoff")),
        _seconds(check_interval, "--check-interval"),
        reuse_key,
        bundle_interval=None
        if bundle_interval.strip() in ("0", "0s")
        else _seconds(bundle_interval, "--bundle-interval"),
    )

    def connect(identity: Identity) -> AbstractContextManager[Renewer]:
        return PkiClient(server, identity=identity)

    worker = RenewalAgent(
        config, connect, on_renew=hook, on_bundle=hook.bundle_changed if hook else None
    )
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if once:
        try:
            outcome = worker.run_once(attempts, stop)
        except UntrustedServer as exc:
            raise trust_hint(exc) from None
        err.print("renewed" if outcome is Outcome.RENEWED else "not due yet")
        return
    err.print(f"keeping {cert} fresh (server {server})")
    worker.run(stop)


def enroll(
    server: ServerOpt,
    token: Annotated[str, typer.Option(envvar="PKIFORGE_TOKEN", help="One-time token pkf_...")],
    name: Annotated[list[str], typer.Option("--name", help="DNS name, IP or URI; repeatable.")],
    cert: CertOpt,
    key: KeyOpt,
    ca: CaOpt = None,
    root_fingerprint: Annotated[
        str | None,
        typer.Option(help="SHA-256 of the root, to fetch and trust it when --ca does not exist."),
    ] = None,
    service_id: Annotated[str | None, typer.Option(help="Default: the token's.")] = None,
    profile: Annotated[
        str | None, typer.Option(help="Certificate profile (default: the token's).")
    ] = None,
    key_type: Annotated[str, typer.Option(help="p256, p384, ed25519, rsa2048 ...")] = "p256",
    force: Annotated[
        bool, typer.Option("--force", help="Replace --cert and --key (kept as .bak).")
    ] = False,
) -> None:
    """Get a service's first certificate with a one-time token; the key is made on this host."""
    from pkiforge.ca.enrollment import parse_token
    from pkiforge.cli.files import check_folders, check_writable
    from pkiforge.client.enroll import fetch_root, parse_fingerprint
    from pkiforge.client.sync import PkiClient
    from pkiforge.pairs import write_atomic
    from pkiforge.x509.keys import parse_key_type

    try:
        parse_token(token)
    except AuthenticationFailed as exc:  # refused here, before a key is made or a server asked
        raise InvalidInput(f"--token: {exc}", field="token") from None
    if root_fingerprint is not None:
        root_fingerprint = parse_fingerprint(root_fingerprint)
    identity = _identity(cert, key, ca)
    check_folders({"--cert": identity.cert, "--key": identity.key, "--ca": identity.ca})
    check_writable([identity.cert, identity.key], force)  # before the token is spent
    if not identity.ca.exists():
        if not root_fingerprint:
            raise InvalidInput(f"{identity.ca} does not exist: pass --root-fingerprint", field="ca")
        write_atomic(identity.ca, fetch_root(server, root_fingerprint))
    try:
        with PkiClient(server, verify=identity.ca) as client:
            issued = client.enroll(
                token,
                name,
                identity,
                service_id=service_id,
                profile=profile,
                key_type=parse_key_type(key_type),
            )
    except UntrustedServer as exc:
        raise trust_hint(exc) from None
    err.print(
        f"enrolled {issued.service_id}: serial {issued.serial}, valid until {issued.not_after}"
    )
