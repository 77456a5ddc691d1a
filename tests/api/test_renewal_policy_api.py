"""GET /api/v1/renewal-policy: rotation_policy as the agent and PkiClient take it."""

from __future__ import annotations

from pathlib import Path

from pkiforge.settings import RotationPolicySettings

from .helpers import make_api


async def test_the_renewal_policy_follows_the_settings(tmp_path: Path) -> None:
    made = make_api(tmp_path / "home")
    try:
        policy = RotationPolicySettings(renew_before_expiry_days=45, notification_days=[7, 21])
        made.app.state.pkiforge.settings = made.pki.settings.model_copy(
            update={"rotation_policy": policy}
        )
        r = await made.client.get("/api/v1/renewal-policy")  # anyone: no certificate
        assert r.status_code == 200
        assert r.json() == {"renew_before_expiry_days": 45, "notification_days": [21, 7]}
    finally:
        await made.client.aclose()
        made.pki.close()
