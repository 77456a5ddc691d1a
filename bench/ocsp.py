"""OCSP responders side by side: pkiforge's API endpoint vs OpenBao's PKI engine, one run.

Both answer for the same intermediate CA (pkiforge's, imported into OpenBao; bench/openbao.py).
Each side is asked about its own population of distinct serials: pkiforge's are rows inserted
in bulk into its SQLite store (copies of one issued certificate under fresh random serials,
`--serials`), OpenBao's are certificates it signed through its API with many concurrent
requests (`--bao-serials`; it has no bulk import); a share of each is revoked (`--revoked`),
and `--unknown` more serials that neither side issued are mixed in. Requests are built ahead
(SHA-1 CertIDs, no nonce, as OpenSSL and browsers send them), shuffled, and sent in turn by
the load generator (bench/loadgen.py: 16 keep-alive connections, each with the client
certificate OpenBao's listener requires) as POST (DER body) and GET (base64 in the path,
RFC 6960 Appendix A.1), so that a run asks about tens of thousands of serials, not one.
Before the rounds each side is checked: a good, a revoked and an unknown serial must be
answered `good`, `revoked` and `unknown` (error otherwise).

Rounds alternate the order of the two sides and of POST and GET; the medians of rate, p50
and p99 are printed per side and method, with the ratio pkiforge/OpenBao, and the load average
at the start and end (the machine is shared).

`--plain` adds pkiforge's plain-HTTP listener (`pkiforge publish serve`, one process, the same
store) as a third side; `--prime` asks each side about every serial once before the rounds, so
that a responder that keeps its answers is measured from its cache.

    .venv/bin/python -m bench.ocsp --serials 100000 --bao-serials 10000 --rounds 3
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import os
import random
import shutil
import sqlite3
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from bench.cpu import tree_cpu_seconds
from bench.issuance import PASSPHRASE, export_intermediate, free_port, prepare, process, wait_ready
from bench.loadgen import Result, Target, run
from bench.openbao import MOUNT, OpenBao, bao_binary, bao_version, pkiforge_tls, running_openbao

METHODS = ("POST", "GET")
SIDES = ("pkiforge", "openbao")
PLAIN = "pkiforge-plain"  # `pkiforge publish serve`: the same store, plain HTTP


@dataclass(frozen=True)
class Issuer:
    """The CertID fields of the intermediate (SHA-1, as OCSP clients send them)."""

    name_hash: bytes
    key_hash: bytes

    @classmethod
    def of(cls, leaf: x509.Certificate, issuer: x509.Certificate) -> Issuer:
        req = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
        return cls(req.issuer_name_hash, req.issuer_key_hash)

    def request(self, serial: int) -> bytes:
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            self.name_hash, self.key_hash, serial, hashes.SHA1()
        )
        return builder.build().public_bytes(serialization.Encoding.DER)


@dataclass
class Population:
    """The serials one side is asked about: issued (some revoked) and never issued."""

    good: list[int]
    revoked: list[int]
    unknown: list[int]

    def all(self) -> list[int]:
        return self.good + self.revoked + self.unknown


def random_serial(rng: random.Random) -> int:
    """159 random bits, positive, at most 20 octets (as pkiforge and OpenBao make them)."""
    return rng.getrandbits(159) | 1 << 152


def insert_pkiforge_serials(home: Path, count: int, revoked: int, rng: random.Random) -> None:
    """Copies of the bench client's certificate row under `count` fresh serials, `revoked` of
    them revoked: the store's own tables, written by SQLite in one transaction.
    """
    conn = sqlite3.connect(home / "pkiforge.db")
    try:
        conn.execute("PRAGMA synchronous = OFF")
        columns = [r[1] for r in conn.execute("PRAGMA table_info(certificates)")]
        template = conn.execute(
            f"SELECT {', '.join(columns)} FROM certificates WHERE common_name = 'bench-client' "
            "AND status = 'active' LIMIT 1"
        ).fetchone()
        serial_at = columns.index("serial_number")
        status_at = columns.index("status")
        fingerprint_at = columns.index("fingerprint_sha256")
        rows = []
        for i in range(count):
            row = list(template)
            row[serial_at] = format(random_serial(rng), "x")
            row[status_at] = "revoked" if i < revoked else "active"
            row[fingerprint_at] = hashlib.sha256(row[serial_at].encode()).hexdigest()
            rows.append(row)
        marks = ", ".join("?" for _ in columns)
        with conn:
            conn.executemany(
                f"INSERT INTO certificates ({', '.join(columns)}) VALUES ({marks})", rows
            )
            conn.execute(
                "INSERT INTO revocations (serial_number, reason, revoked_at, revoked_by)"
                " SELECT serial_number, 'keyCompromise', created_at, 'operator:bench'"
                " FROM certificates WHERE status = 'revoked'"
            )
    finally:
        conn.close()


def pkiforge_population(home: Path) -> tuple[list[int], list[int]]:
    """The bench client's active and revoked serials in pkiforge's store."""
    with sqlite3.connect(home / "pkiforge.db") as conn:
        found = conn.execute(
            "SELECT serial_number, status FROM certificates WHERE common_name = 'bench-client'"
        ).fetchall()
    good = [int(s, 16) for s, status in found if status == "active"]
    revoked = [int(s, 16) for s, status in found if status == "revoked"]
    return good, revoked


def http_request(url: str, method: str, der: bytes, host: str) -> bytes:
    """The raw HTTP/1.1 request for one OCSP request (`url` is the responder's base URL)."""
    path = urlsplit(url).path
    if method == "GET":
        # RFC 6960 A.1: the base64 of the DER, URL-encoded ('+', '/' and '=' escaped)
        encoded = quote(base64.b64encode(der).decode(), safe="")
        return f"GET {path}/{encoded} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(der)}\r\n\r\n"
    )
    return head.encode() + der


# a signed answer, or the unsigned "unauthorized" that a responder may give a serial it never
# issued (RFC 5019 §2.2.3; pkiforge's `ocsp.unknown: unauthorized`)
ANSWERS = (ocsp.OCSPResponseStatus.SUCCESSFUL, ocsp.OCSPResponseStatus.UNAUTHORIZED)


def answered(status: int, body: bytes) -> bool:
    """A 200 carrying an OCSP response that answers (not malformedRequest, tryLater ...)."""
    if status != 200:
        return False
    try:
        return ocsp.load_der_ocsp_response(body).response_status in ANSWERS
    except ValueError:
        return False


def cycling(requests: list[bytes], start: int) -> Callable[[], bytes]:
    """A supply of requests that goes round `requests` from `start` (never runs out)."""
    it = itertools.cycle(requests[start:] + requests[:start])
    return lambda: next(it)


def check_statuses(
    url: str, tls: tuple[str, str, str], issuer: Issuer, pop: Population, name: str
) -> str:
    """Ask about a good, a revoked and an unknown serial; what the unknown one got.

    The good one must be answered `good` and the revoked one `revoked`. An unknown serial
    may be `unknown` or, as RFC 6960 §2.2 allows for a responder that knows only its
    revocations, `good` (OpenBao's answer: it looks up revocations only).

    Raises:
        SystemExit: a side answers wrongly (the bench would measure something else).
    """
    ctx = ssl.create_default_context(cafile=tls[0])
    ctx.load_cert_chain(tls[1], tls[2])
    asked = {
        "good": (pop.good[0], {ocsp.OCSPCertStatus.GOOD}),
        "revoked": (pop.revoked[0], {ocsp.OCSPCertStatus.REVOKED}),
        "unknown": (pop.unknown[0], {ocsp.OCSPCertStatus.UNKNOWN, ocsp.OCSPCertStatus.GOOD}),
    }
    unknown = ""
    for what, (serial, allowed) in asked.items():
        r = httpx.post(
            url,
            content=issuer.request(serial),
            headers={"content-type": "application/ocsp-request"},
            verify=ctx,
            timeout=30.0,
        )
        got = ocsp.load_der_ocsp_response(r.content)
        if what == "unknown" and got.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED:
            return "unauthorized (unsigned)"
        if got.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise SystemExit(f"{name}: {what} serial {serial:x} got {got.response_status}")
        if got.certificate_status not in allowed or got.serial_number != serial:
            raise SystemExit(f"{name}: {what} serial {serial:x} is {got.certificate_status}")
        if what == "unknown":
            unknown = got.certificate_status.name.lower()
    return unknown


@dataclass
class Side:
    """One responder under load: where it listens, what it is asked, its server's pid."""

    name: str
    url: str  # the OCSP base URL: POST to it, GET below it
    host: str
    pid: int
    requests: dict[str, list[bytes]]


@dataclass
class Figures:
    result: Result
    cpu_seconds: float | None

    def cpu_us(self) -> float:
        if self.cpu_seconds is None or not self.result.requests:
            return float("nan")
        return self.cpu_seconds * 1e6 / self.result.requests


def build_requests(side: Side, issuer: Issuer, serials: list[int]) -> None:
    ders = [issuer.request(s) for s in serials]
    side.requests = {m: [http_request(side.url, m, d, side.host) for d in ders] for m in METHODS}


def measure(
    side: Side, method: str, files: dict[str, Path], args: argparse.Namespace, start: int
) -> Figures:
    target = Target(
        f"{side.name} {method}",
        side.url,
        b"",
        str(files["root"]),
        str(files["client_cert"]),
        str(files["client_key"]),
        ok=answered,
        method=method,
        supply=cycling(side.requests[method], start),
    )
    # the CPU read when the warm-up ends (from a timer thread: the load generator's loop is
    # busy), so that it covers the same window as the responses counted
    at_start: list[float | None] = []
    timer = threading.Timer(args.warmup, lambda: at_start.append(tree_cpu_seconds(side.pid)))
    timer.start()
    result = run(
        target,
        concurrency=args.concurrency,
        warmup=args.warmup,
        duration=args.duration,
        max_requests=10**9,
    )
    after = tree_cpu_seconds(side.pid)
    timer.join()
    before = at_start[0] if at_start else None
    cpu = after - before if before is not None and after is not None else None
    return Figures(result, cpu)


def prime(side: Side, files: dict[str, Path], args: argparse.Namespace) -> tuple[int, float]:
    """Ask about every serial once (POST), so that a responder that keeps what it signed
    answers the rounds from what it kept; (answers, seconds)."""
    it = iter(side.requests["POST"])
    target = Target(
        f"{side.name} prime",
        side.url,
        b"",
        str(files["root"]),
        str(files["client_cert"]),
        str(files["client_key"]),
        ok=answered,
        supply=lambda: next(it, None),
    )
    t0 = time.perf_counter()
    result = run(target, concurrency=args.concurrency, warmup=0, duration=24 * 3600.0)
    if result.errors:
        raise SystemExit(f"{side.name}: {result.errors} errors while priming")
    return result.requests, time.perf_counter() - t0


@contextmanager
def pkiforge_server(files: dict[str, Path], args: argparse.Namespace) -> Iterator[Side]:
    port = free_port()
    env = {**os.environ, "PKIFORGE_CA_PASSPHRASE": PASSPHRASE}
    cmd = [sys.executable, "-m", "pkiforge.cli", "--home", str(files["home"]), "serve"]
    cmd += ["--port", str(port), "--workers", str(args.workers)]
    with process(cmd, env=env) as proc:
        wait_ready(f"https://localhost:{port}/healthz", files["root"])
        yield Side(
            "pkiforge", f"https://localhost:{port}/api/v1/ocsp", f"localhost:{port}", proc.pid, {}
        )


def bao_side(bao: OpenBao) -> Side:
    host = bao.url.removeprefix("https://")
    return Side("openbao", f"{bao.url}/v1/{MOUNT}/ocsp", host, bao.pid, {})


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-type", default="rsa2048", help="intermediate key: rsa2048, p256")
    parser.add_argument("--serials", type=int, default=100_000, help="pkiforge's certificates")
    parser.add_argument(
        "--bao-serials",
        type=int,
        default=10_000,
        help="OpenBao's certificates, signed through its API before the rounds",
    )
    parser.add_argument("--revoked", type=float, default=0.1, help="share of each side revoked")
    parser.add_argument(
        "--unknown", type=float, default=0.1, help="never-issued serials, as a share of issued"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="pkiforge worker processes")
    parser.add_argument("--only", choices=SIDES, help="run one side only")
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument(
        "--plain",
        action="store_true",
        help="also pkiforge's plain-HTTP listener (`pkiforge publish serve`), same store",
    )
    parser.add_argument(
        "--prime",
        action="store_true",
        help="ask about every serial once before the rounds (for a responder that caches)",
    )
    args = parser.parse_args(argv)
    if args.serials < 10 or args.bao_serials < 10:
        parser.error("--serials and --bao-serials must be at least 10")
    if not 0 < args.revoked < 1 or not 0 < args.unknown <= 1:
        parser.error("--revoked must be in (0, 1) and --unknown in (0, 1]")
    return args


def _population(
    good: list[int], revoked: list[int], share: float, rng: random.Random
) -> Population:
    unknown = [random_serial(rng) for _ in range(max(1, int((len(good) + len(revoked)) * share)))]
    return Population(good, revoked, unknown)


def main() -> None:
    args = parse_args()
    sides = [s for s in SIDES if args.only in (None, s)]
    if args.plain and "pkiforge" in sides:
        sides.insert(1, PLAIN)
    binary = bao_binary() if "openbao" in sides else None
    rng = random.Random(args.seed)
    load_start = os.getloadavg()[0]
    rows: dict[tuple[str, str], list[Figures]] = {(s, m): [] for s in sides for m in METHODS}
    work = Path(tempfile.mkdtemp(prefix="bench-ocsp-"))
    notes: list[str] = []
    try:
        files = prepare(work, args.key_type)
        ca_cert, ca_key = export_intermediate(files, work)
        issuer_cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        client = x509.load_pem_x509_certificate(files["client_cert"].read_bytes())
        issuer = Issuer.of(client, issuer_cert)
        tls = (str(files["root"]), str(files["client_cert"]), str(files["client_key"]))
        pops: dict[str, Population] = {}
        if "pkiforge" in sides:
            t0 = time.perf_counter()
            insert_pkiforge_serials(
                files["home"], args.serials, int(args.serials * args.revoked), rng
            )
            good, revoked = pkiforge_population(files["home"])
            pops["pkiforge"] = pops[PLAIN] = _population(good, revoked, args.unknown, rng)
            notes.append(
                f"pkiforge: {len(good)} good, {len(revoked)} revoked inserted in "
                f"{time.perf_counter() - t0:.1f} s"
            )
        with _maybe_openbao(work, files, ca_cert, ca_key, binary) as bao:
            if bao is not None:
                t0 = time.perf_counter()
                # revocations must not rebuild the CRL each (OpenBao's default): the CRL is
                # rebuilt in the background instead, as a large deployment would configure it
                bao.call("POST", f"{MOUNT}/config/crl", {"auto_rebuild": True})
                serials = bao.sign_many(files["csr"].read_text(), args.bao_serials, 32)
                signed = time.perf_counter() - t0
                cut = int(len(serials) * args.revoked)
                bao.revoke_many(serials[:cut])
                pops["openbao"] = _population(serials[cut:], serials[:cut], args.unknown, rng)
                notes.append(
                    f"openbao: {len(serials)} signed through its API in {signed:.1f} s "
                    f"({len(serials) / signed:.0f}/s, 32 at a time), {cut} revoked in "
                    f"{time.perf_counter() - t0 - signed:.1f} s"
                )
            with (
                _maybe_pkiforge(files, args, "pkiforge" in sides) as pf,
                _maybe_publish(files, PLAIN in sides) as plain,
            ):
                live = {s.name: s for s in (pf, plain, bao_side(bao) if bao else None) if s}
                for name, side in live.items():
                    serials = pops[name].all()
                    rng.shuffle(serials)
                    build_requests(side, issuer, serials)
                    unknown = check_statuses(side.url, tls, issuer, pops[name], name)
                    notes.append(f"{name} answers a never-issued serial: {unknown}")
                    if args.prime and name != PLAIN:  # it shares pkiforge's store and cache
                        count, took = prime(side, files, args)
                        notes.append(f"{name}: primed with {count} requests in {took:.0f} s")
                for i in range(args.rounds):
                    order = list(live) if i % 2 == 0 else list(reversed(live))
                    methods = METHODS if i % 2 == 0 else tuple(reversed(METHODS))
                    for method in methods:
                        for name in order:
                            side = live[name]
                            start = i * len(side.requests[method]) // max(args.rounds, 1)
                            rows[(name, method)].append(measure(side, method, files, args, start))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, rows, notes, load_start, binary)


@contextmanager
def _maybe_openbao(
    work: Path, files: dict[str, Path], ca_cert: Path, ca_key: Path, binary: Path | None
) -> Iterator[OpenBao | None]:
    if binary is None:
        yield None
        return
    tls = pkiforge_tls(files, work)
    with running_openbao(
        work / "openbao", tls, ca_cert.read_text(), ca_key.read_text(), binary
    ) as bao:
        yield bao


@contextmanager
def _maybe_publish(files: dict[str, Path], wanted: bool) -> Iterator[Side | None]:
    """`pkiforge publish serve` on the same home: OCSP over plain HTTP, one process."""
    if not wanted:
        yield None
        return
    port = free_port()
    env = {**os.environ, "PKIFORGE_CA_PASSPHRASE": PASSPHRASE}
    cmd = [sys.executable, "-m", "pkiforge.cli", "--home", str(files["home"]), "publish"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with process(cmd, env=env) as proc:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/api/v1/ca/root", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit(f"pkiforge publish serve did not come up on {base}")
        yield Side(PLAIN, f"{base}/api/v1/ocsp", f"127.0.0.1:{port}", proc.pid, {})


@contextmanager
def _maybe_pkiforge(
    files: dict[str, Path], args: argparse.Namespace, wanted: bool
) -> Iterator[Side | None]:
    if not wanted:
        yield None
        return
    with pkiforge_server(files, args) as side:
        yield side


def report(
    args: argparse.Namespace,
    rows: dict[tuple[str, str], list[Figures]],
    notes: list[str],
    load_start: float,
    binary: Path | None,
) -> None:
    print(
        f"intermediate {args.key_type}, {args.concurrency} connections, {args.rounds} rounds of "
        f"{args.duration:.0f} s after {args.warmup:.0f} s warm-up per side and method, "
        f"pkiforge workers={args.workers}, {os.cpu_count()} CPUs, load average "
        f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    if binary is not None:
        print(bao_version(binary).splitlines()[0])
    for note in notes:
        print(note)
    print(
        f"{'side':14} {'method':6} {'round':>5} {'resp/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'CPU us/resp':>11}"
    )
    medians: dict[tuple[str, str], float] = {}
    for (name, method), figures in rows.items():
        for i, f in enumerate(figures):
            r = f.result
            print(
                f"{name:14} {method:6} {i + 1:5d} {r.rate:8.1f} {r.pct(50):7.1f} {r.pct(99):7.1f} "
                f"{r.errors:6d} {f.cpu_us():11.0f}"
            )
        if figures:
            medians[(name, method)] = _median([f.result.rate for f in figures])
            print(
                f"{name:14} {method:6} {'med':>5} {medians[(name, method)]:8.1f} "
                f"{_median([f.result.pct(50) for f in figures]):7.1f} "
                f"{_median([f.result.pct(99) for f in figures]):7.1f} {'':6} "
                f"{_median([f.cpu_us() for f in figures]):11.0f}"
            )
    for ours, method in itertools.product(("pkiforge", PLAIN), METHODS):
        p, o = rows.get((ours, method)), rows.get(("openbao", method))
        if not p or not o:
            continue
        per_round = ", ".join(
            f"{_ratio(a.result.rate, b.result.rate):.2f}x" for a, b in zip(p, o, strict=True)
        )
        print(
            f"ratio {ours}/openbao {method}: "
            f"{_ratio(medians[(ours, method)], medians[('openbao', method)]):.2f}x of the "
            f"medians; per round {per_round}"
        )
    print(
        "CPU us/resp: CPU time of the responder's processes after the warm-up per response "
        "counted; the load generator is not counted"
    )


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


if __name__ == "__main__":
    main()
