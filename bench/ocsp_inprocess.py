"""OCSP in-process, without TLS or HTTP: the answer rate over many distinct serials (first
request for each serial, then again), and what signing each answer at issuance would add to
issuance. Runs the `pkiforge` importable from PYTHONPATH, so one command measures two trees:

    PYTHONPATH=/path/to/before/src .venv/bin/python -m bench.ocsp_inprocess rate --serials 1000
    PYTHONPATH=src .venv/bin/python -m bench.ocsp_inprocess rate --serials 1000
    PYTHONPATH=src .venv/bin/python -m bench.ocsp_inprocess issuance-cost

`rate` works with trees before the answer cache (it calls `OCSPResponder(ctx).respond`).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from pkiforge.ca.hierarchy import InitOptions
from pkiforge.ca.issue_request import IssueRequest
from pkiforge.ca.ocsp import OCSPResponder
from pkiforge.settings import load_settings
from pkiforge.wiring import build_pki

PASSPHRASE = b"bench-passphrase-123456"


def _pki(key_type: str) -> Any:
    home = Path(tempfile.mkdtemp(prefix="ocsp-bench-")) / "home"
    home.mkdir()
    pki = build_pki(load_settings(home), PASSPHRASE)
    pki.hierarchy.initialize(InitOptions(root_key_type="p256", intermediate_key_type=key_type))
    return pki


def rate(args: argparse.Namespace) -> None:
    pki = _pki(args.key_type)
    inter, _ = pki.hierarchy.chain("services")
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    requests = []
    for i in range(args.serials):
        cert = pki.certificates.issue(IssueRequest(f"s{i}.internal", public_key=key)).certificate
        builder = ocsp.OCSPRequestBuilder().add_certificate(cert, inter, hashes.SHA1())
        requests.append(builder.build().public_bytes(serialization.Encoding.DER))
    name_hash = hashlib.sha1(inter.subject.public_bytes()).digest()
    known = ocsp.load_der_ocsp_request(requests[0]).issuer_key_hash
    for i in range(args.serials // 10):  # a tenth more that the CA never issued
        builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            name_hash, known, 10**30 + i, hashes.SHA1()
        )
        requests.append(builder.build().public_bytes(serialization.Encoding.DER))
    responder = getattr(pki, "ocsp", None) or OCSPResponder(pki.ctx)
    for label in ("first request per serial", "asked again"):
        start = time.perf_counter()
        for request in requests:
            responder.respond(request)
        took = time.perf_counter() - start
        print(f"{label}: {len(requests)} answers in {took:.2f} s = {len(requests) / took:.0f}/s")


def issuance_cost(args: argparse.Namespace) -> None:
    pki = _pki(args.key_type)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pki.ocsp.presign(
        "services", pki.certificates.issue(IssueRequest("w.internal", public_key=key)).serial
    )
    issue_ms, sign_ms = [], []
    for batch in range(args.batches):
        start = time.perf_counter()
        serials = [
            pki.certificates.issue(IssueRequest(f"s{batch}-{i}.internal", public_key=key)).serial
            for i in range(args.size)
        ]
        issue_ms.append((time.perf_counter() - start) / args.size * 1000)
        start = time.perf_counter()
        for serial in serials:
            pki.ocsp.presign("services", serial)
        sign_ms.append((time.perf_counter() - start) / args.size * 1000)
    issued, signed = statistics.median(issue_ms), statistics.median(sign_ms)
    print(
        f"{args.key_type} intermediate: issuance {issued:.2f} ms/cert; its OCSP answer signed "
        f"and kept {signed:.2f} ms/cert (+{100 * signed / issued:.0f}% if done at issuance)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("rate", help="answers per second over distinct serials")
    one.add_argument("--serials", type=int, default=1000)
    two = sub.add_parser("issuance-cost", help="signing the answer at issuance, per certificate")
    two.add_argument("--batches", type=int, default=5)
    two.add_argument("--size", type=int, default=100)
    for each in (one, two):
        each.add_argument("--key-type", default="rsa2048", help="the intermediate's key")
    args = parser.parse_args()
    (rate if args.what == "rate" else issuance_cost)(args)


if __name__ == "__main__":
    main()
