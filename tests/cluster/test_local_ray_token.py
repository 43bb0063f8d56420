"""The embedded Ray's auth token is private to its owner (Ray 2.60 writes it 0644)."""

from __future__ import annotations

import logging
import stat

from spinfits.cluster.local_ray import restrict_token_file


def test_token_file_is_made_private(tmp_path):
    token = tmp_path / "auth_token"
    token.write_text("secret")
    token.chmod(0o644)
    restrict_token_file(token)
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    restrict_token_file(tmp_path / "absent")  # no token (auth disabled): nothing to do


def test_rays_token_banner_is_held_back_and_other_warnings_pass(caplog):
    """Ray's own warning functions (what ``ray.init()`` calls on a local start), without Ray."""
    from ray._private.authentication import authentication_token_setup as ray_token

    from spinfits.cluster.local_ray import quiet_token_banner

    caplog.set_level(logging.INFO)
    with quiet_token_banner() as banner:
        ray_token._warn_token_auth_enabled()
        ray_token._warn_token_auth_disabled()
    assert banner.seen
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if m.startswith("Token authentication is enabled for this Ray cluster")]
    assert [
        m for m in messages if m.startswith("Token authentication is disabled")
    ]  # a security warning stays
    caplog.clear()
    ray_token._warn_token_auth_enabled()  # outside the block Ray's logging is as it was
    assert any(r.getMessage().startswith("Token authentication is enabled") for r in caplog.records)
