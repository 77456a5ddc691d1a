"""CRL build time and size for 1k, 10k and 100k revoked certificates: before and after.

Each size gets a fresh home (SQLite, P-256 intermediate) with one issued certificate and n
revoked copies of it made by SQLite itself (reasons mixed, one in four unspecified). Then:

- after: `RevocationService.generate_crl` as shipped (the revocation columns in one streaming
  query, every entry handed to the builder in one list), end to end: read, build, sign, store;
- before: the code this replaced, kept here only as the comparison: every revoked record read
  with its certificate parsed, then `add_revoked_certificate` once per entry (each call copies
  the builder's list, so n entries cost n²/2 copies), signed; not stored.

Each figure is the median of `--rounds`, in wall seconds and in CPU seconds of this process
(the better figure on a loaded machine); the size is the DER's.

The peer, for `--openbao-sizes` (1k and 10k by default; 0 skips it): OpenBao's PKI engine
(bench/openbao.py) with the same key type, its CRL rebuilt on demand (`auto_rebuild`, so that a
revocation does not rebuild it each time). One server signs and revokes certificates through
its API up to each size in turn, then `pki/crl/rotate` (a forced, synchronous rebuild: read
every revocation from raft storage, build, sign, store) is timed `--rounds` times: wall
seconds, and CPU seconds of the `bao` process; the size is that of the DER it then serves.

    .venv/bin/python -m bench.revocation --sizes 1000,10000,100000 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from bench.cpu import tree_cpu_seconds
from bench.openbao import MOUNT, OpenBao, bao_binary, bao_version, pkiforge_tls, running_openbao
from pkiforge.ca.hierarchy import InitOptions
from pkiforge.clock import FixedClock
from pkiforge.settings import CASettings, Settings
from pkiforge.wiring import Pki, build_pki

PASSPHRASE = b"bench-passphrase-0123456789"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
REASONS = ("keyCompromise", "superseded", "cessationOfOperation", "unspecified")
CSR = Path(__file__).resolve().parent.parent / "tests" / "data" / "csr-p256.pem"


def make_home(root: Path, revoked: int) -> Pki:
    home = root / f"home-{revoked}"
    home.mkdir()
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'pkiforge.db'}",
        ca=CASettings(
            trust_domain="bench.internal",
            root_key_type="p256",
            intermediate_key_type="p256",
            kdf_log2_n=14,
        ),
    )
    pki = build_pki(settings, PASSPHRASE, FixedClock(NOW))
    pki.hierarchy.initialize(InitOptions())
    pki.certificates.issue(pki.certificates.request_from_csr(CSR.read_bytes(), service_id="web"))
    conn = sqlite3.connect(home / "pkiforge.db")
    try:
        conn.execute("PRAGMA synchronous = OFF")
        columns = [r[1] for r in conn.execute("PRAGMA table_info(certificates)")]
        made = {
            "serial_number": "'4' || lower(hex(randomblob(19)))",
            "fingerprint_sha256": "lower(hex(randomblob(32)))",
            "status": "'revoked'",
        }
        select = ", ".join(made.get(c, f"t.{c}") for c in columns)
        reason = " ".join(f"WHEN {i} THEN '{r}'" for i, r in enumerate(REASONS))
        with conn:
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                f" WHERE i < {revoked}), t AS (SELECT * FROM certificates"
                " WHERE service_id = 'web' LIMIT 1)"
                f" INSERT INTO certificates ({', '.join(columns)}) SELECT {select} FROM n, t"
            )
            conn.execute(
                "INSERT INTO revocations (serial_number, reason, revoked_at, revoked_by)"
                f" SELECT serial_number, CASE abs(random()) % {len(REASONS)} {reason} END,"
                " created_at, 'operator:bench' FROM certificates WHERE status = 'revoked'"
            )
    finally:
        conn.close()
    return pki


def before(pki: Pki) -> bytes:
    """The replaced path: full records, one `add_revoked_certificate` per entry."""
    signer = pki.ctx.signer(pki.ctx.get_ca("services"), None)
    ski = signer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    with pki.store.transaction(readonly=True) as tx:
        records = [
            r
            for r in tx.certificates.revoked("services")
            if (r.not_after is None or r.not_after > NOW)
            and r.serial != signer.certificate.serial_number
        ]
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(signer.certificate.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    for record in records:
        rev = record.revocation
        assert rev is not None
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(record.serial)
            .revocation_date(rev.revoked_at.replace(microsecond=0))
        )
        if rev.reason is not x509.ReasonFlags.unspecified:
            entry = entry.add_extension(x509.CRLReason(rev.reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return signer.sign_crl(builder).public_bytes(Encoding.DER)


def after(pki: Pki) -> bytes:
    return pki.revocation.generate_crl("services").der


def timed(fn: Callable[[Pki], bytes], pki: Pki, rounds: int) -> tuple[float, float, int, int]:
    """Median wall seconds, median CPU seconds of this process, DER size and entry count."""
    walls, cpus = [], []
    der = b""
    for _ in range(rounds):
        start, cpu = time.perf_counter(), time.process_time()
        der = fn(pki)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return (
        statistics.median(walls),
        statistics.median(cpus),
        len(der),
        len(x509.load_der_x509_crl(der)),
    )


def _sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip() and int(s) > 0]
    if sorted(sizes) != sizes:
        raise argparse.ArgumentTypeError("sizes must be ascending")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=_sizes("1000,10000,100000"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--before-rounds", type=int, default=1, help="the slow path's rounds (0: skip it)"
    )
    parser.add_argument(
        "--openbao-sizes",
        type=_sizes,
        default=_sizes("1000,10000"),
        help="revoked certificates for OpenBao's CRL rebuild (0: skip OpenBao)",
    )
    return parser.parse_args(argv)


def openbao_crls(sizes: list[int], rounds: int) -> list[tuple[int, float, float, int, int]]:
    """OpenBao's forced CRL rebuild at each size: (revoked, wall s, CPU s, DER bytes, entries)."""
    from bench.issuance import export_intermediate, prepare

    binary = bao_binary()
    print(bao_version(binary).splitlines()[0])
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-revocation-bao-") as tmp:
        work = Path(tmp)
        files = prepare(work, "p256")
        cert, key = export_intermediate(files, work)
        tls = pkiforge_tls(files, work)
        with running_openbao(work / "bao", tls, cert.read_text(), key.read_text(), binary) as bao:
            bao.call("POST", f"{MOUNT}/config/crl", {"auto_rebuild": True})
            revoked = 0
            for n in sizes:
                t0 = time.perf_counter()
                serials = bao.sign_many(files["csr"].read_text(), n - revoked, 32)
                bao.revoke_many(serials)
                revoked = n
                print(
                    f"openbao: {len(serials)} more signed and revoked in "
                    f"{time.perf_counter() - t0:.1f} s"
                )
                out.append((n, *_bao_rebuild(bao, rounds)))
    return out


def _bao_rebuild(bao: OpenBao, rounds: int) -> tuple[float, float, int, int]:
    walls, cpus = [], []
    for _ in range(rounds):
        before, start = tree_cpu_seconds(bao.pid), time.perf_counter()
        bao.call("GET", f"{MOUNT}/crl/rotate")
        walls.append(time.perf_counter() - start)
        after = tree_cpu_seconds(bao.pid)
        cpus.append(after - before if after is not None and before is not None else float("nan"))
    der = bao.fetch(f"{MOUNT}/crl")
    return (
        statistics.median(walls),
        statistics.median(cpus),
        len(der),
        len(x509.load_der_x509_crl(der)),
    )


def main() -> None:
    args = parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        f"{'revoked':>8} {'before s':>9} {'cpu s':>8} {'after s':>8} {'cpu s':>7}"
        f" {'ratio':>6} {'DER bytes':>10} entries"
    )
    with tempfile.TemporaryDirectory(prefix="bench-revocation-") as tmp:
        for n in args.sizes:
            pki = make_home(Path(tmp), n)
            try:
                old = old_cpu = float("nan")
                if args.before_rounds:
                    old, old_cpu, _, old_count = timed(before, pki, args.before_rounds)
                    assert old_count == n, (old_count, n)
                new, cpu, size, count = timed(after, pki, args.rounds)
            finally:
                pki.close()
            assert count == n, (count, n)
            print(
                f"{n:>8} {old:>9.3f} {old_cpu:>8.3f} {new:>8.3f} {cpu:>7.3f}"
                f" {old / new:>6.1f} {size:>10} {count}"
            )
    if args.openbao_sizes:
        peer = openbao_crls(args.openbao_sizes, args.rounds)
        print(f"{'revoked':>8} {'openbao s':>9} {'cpu s':>8} {'DER bytes':>10} entries")
        for n, wall, cpu, size, count in peer:
            assert count == n, (count, n)
            print(f"{n:>8} {wall:>9.3f} {cpu:>8.3f} {size:>10} {count}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
