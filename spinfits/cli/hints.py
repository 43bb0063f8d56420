"""Commands printed for the user to run next, runnable as printed (quoted, with every flag)."""

from __future__ import annotations

import shlex

from spinfits.store import S3Options


def store_argument(store: str, s3: S3Options | None) -> str:
    """``STORE`` as a follow-up ``spinfits store ...`` command needs it: quoted for a shell and,
    for an ``s3://`` store, with the flags that reach it (``--endpoint-url``, ``--region``,
    ``--allow-http``, ``--force-path-style``, ``--anonymous``; never keys: those come from the
    AWS chain)."""
    words = [store]
    if s3 is not None and store.startswith("s3://"):
        for flag, value in (("--endpoint-url", s3.endpoint_url), ("--region", s3.region)):
            if value:
                words += [flag, value]
        for flag, on in (
            ("--allow-http", s3.allow_http),
            ("--force-path-style", s3.force_path_style),
            ("--anonymous", s3.anonymous),
        ):
            if on:
                words.append(flag)
    return shlex.join(words)
