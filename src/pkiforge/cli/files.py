"""Reading inputs and writing outputs safely: nothing overwritten by surprise, keys 0600."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography import x509

from pkiforge.errors import Conflict, InvalidInput, NotFound
from pkiforge.pairs import write_atomic


def read_input(path: Path, what: str, field: str) -> bytes:
    """Read a file given on the command line, or `-` for standard input.

    Raises:
        NotFound: no such file. InvalidInput: unreadable.
    """
    if str(path) == "-":
        import sys

        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist", field=field) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}", field=field) from None


def check_writable(paths: Sequence[Path | None], force: bool) -> None:
    """Fail before doing any work if an output exists (without --force) or its folder is missing.

    Raises:
        Conflict: a file is in the way. InvalidInput: the folder does not exist.
    """
    for path in paths:
        if path is None or str(path) == "-":
            continue
        if path.exists() and not force:
            raise Conflict(f"{path} already exists; use --force to replace it", field=str(path))
    check_folders({str(path): path for path in paths if path is not None and str(path) != "-"})


def check_folders(outputs: Mapping[str, Path]) -> None:
    """Refuse an output whose folder is missing rather than create it: an unmounted removable
    medium would otherwise receive an offline key on the local disk. Keys are `--option` names.

    Raises:
        InvalidInput: the folder does not exist (or is not a folder).
    """
    for option, path in outputs.items():
        folder = path.absolute().parent
        if not folder.is_dir():
            raise InvalidInput(
                f"{option}: folder {folder} does not exist; create it (or mount its medium) "
                "first: nothing was written",
                field=option,
            )


def write_output(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write atomically (temp + fsync + rename), or to stdout for `-`; private files are 0600."""
    if str(path) == "-":
        import sys

        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    write_atomic(path, data, 0o600 if private else 0o644)


def load_certificate(data: bytes, what: str = "certificate") -> x509.Certificate:
    """Parse one PEM or DER certificate (the first of a PEM bundle).

    Raises:
        InvalidInput: not a certificate.
    """
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)[0]
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise InvalidInput(f"{what} is not a PEM or DER X.509 certificate", field=what) from None
