"""S3 credentials: never in a repr, dropped by ``without_credentials()``, passed to icechunk by
the process that holds them (``icechunk.s3_storage`` is replaced by a recorder: no S3 needed)."""

from __future__ import annotations

import icechunk
import pytest

from spinfits.store import S3Options, StoreLocation

KEY_ID, SECRET = "AKIAEXAMPLEKEYID", "wJalrXUtnFEMI-example-secret"


@pytest.fixture
def keyed() -> S3Options:
    return S3Options(
        endpoint_url="http://127.0.0.1:9000",
        region="us-east-1",
        allow_http=True,
        force_path_style=True,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
    )


@pytest.fixture
def storage_calls(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(icechunk, "s3_storage", lambda **kwargs: calls.append(kwargs) or "storage")
    return calls


def test_repr_hides_the_keys_and_keeps_the_rest(keyed):
    for text in (repr(keyed), str(keyed), f"{keyed}", repr(StoreLocation.parse("s3://fits/p", keyed))):
        assert KEY_ID not in text and SECRET not in text, text
        assert "access_key_id='***'" in text and "secret_access_key='***'" in text
        assert "endpoint_url='http://127.0.0.1:9000'" in text and "region='us-east-1'" in text
    assert "access_key_id=None, secret_access_key=None" in repr(S3Options())


def test_precompute_config_repr_hides_the_keys(keyed, tmp_path):
    from spinfits.cluster.precompute import PrecomputeConfig

    text = repr(
        PrecomputeConfig(dataset=tmp_path / "people.npz", store="s3://fits/p", model_dir=tmp_path, s3=keyed)
    )
    assert SECRET not in text and KEY_ID not in text and "secret_access_key='***'" in text


def test_without_credentials_drops_only_the_keys(keyed):
    plain = keyed.without_credentials()
    assert keyed.has_credentials and not plain.has_credentials
    assert plain == S3Options(
        endpoint_url="http://127.0.0.1:9000", region="us-east-1", allow_http=True, force_path_style=True
    )
    assert keyed.secret_access_key == SECRET  # the original is unchanged (frozen)
    assert not S3Options(anonymous=True).has_credentials


def test_storage_passes_explicit_keys_to_icechunk(keyed, storage_calls):
    assert StoreLocation.parse("s3://fits/runs/a", keyed).storage() == "storage"
    (call,) = storage_calls
    assert call["access_key_id"] == KEY_ID and call["secret_access_key"] == SECRET
    assert call["from_env"] is None  # the given keys, not the AWS chain
    assert (call["bucket"], call["prefix"], call["endpoint_url"]) == (
        "fits",
        "runs/a",
        "http://127.0.0.1:9000",
    )
    assert call["allow_http"] and call["force_path_style"] and call["region"] == "us-east-1"


def test_storage_without_credentials_uses_the_aws_chain(keyed, storage_calls):
    StoreLocation.parse("s3://fits", keyed.without_credentials()).storage()
    StoreLocation.parse("s3://fits", S3Options(anonymous=True)).storage()
    chain, anonymous = storage_calls
    assert chain["access_key_id"] is None and chain["secret_access_key"] is None
    assert chain["from_env"] is True and chain["anonymous"] is None
    assert anonymous["anonymous"] is True and anonymous["from_env"] is None
