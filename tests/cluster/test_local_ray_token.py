"""The embedded Ray's auth token is private to its owner (Ray 2.60 writes it 0644)."""

from __future__ import annotations

import stat

from spinfits.cluster.local_ray import restrict_token_file


def test_token_file_is_made_private(tmp_path):
    token = tmp_path / "auth_token"
    token.write_text("secret")
    token.chmod(0o644)
    restrict_token_file(token)
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    restrict_token_file(tmp_path / "absent")  # no token (auth disabled): nothing to do
