"""Whether this process is the entrypoint of a Ray job, and what that means for output paths.

``ray job submit --working-dir . -- spinfits ...`` runs the command in a subprocess of Ray's job
supervisor, in Ray's temporary copy of the working folder (``.../runtime_resources/
working_dir_files/_ray_pkg_<hash>``), which Ray deletes when it no longer needs the package. A
relative output path (``--store out/store``) lands in that copy and is lost, and the printed hints
point nowhere. Ray 2.60 marks the entrypoint's environment with ``RAY_JOB_CONFIG_JSON_ENV_VAR``
(``job_supervisor._get_driver_env_vars``: JSON ``{"runtime_env": {...}, "metadata":
{"job_submission_id": ...}}``), set for the entrypoint only, not for its tasks and actors
(``RAY_JOB_ID`` is the reverse: set for workers, not for a submitted entrypoint). That variable is
the signal read here: Ray's own, not configuration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from spinfits.errors import InputError

#: The variable Ray's job supervisor sets in a submitted job's entrypoint environment.
RAY_JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"


@dataclass(frozen=True)
class RayJob:
    """submission_id: the job's id (``raysubmit_...``, or the --submission-id given);
    working_dir: its runtime environment's working_dir package URI (None if it has none)."""

    submission_id: str
    working_dir: str | None


def current_ray_job(environ: Mapping[str, str] = os.environ) -> RayJob | None:
    """The Ray job this process is the entrypoint of, or None when it is not one."""
    text = environ.get(RAY_JOB_CONFIG_VARIABLE)
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError:
        config = {}
    config = config if isinstance(config, dict) else {}
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    runtime_env = config.get("runtime_env") if isinstance(config.get("runtime_env"), dict) else {}
    working_dir = runtime_env.get("working_dir")
    return RayJob(
        str(metadata.get("job_submission_id", "?")), None if working_dir is None else str(working_dir)
    )


def check_outputs_outlive_the_job(
    outputs: Mapping[str, str | os.PathLike | None], environ: Mapping[str, str] = os.environ
) -> None:
    """Inside a Ray job, refuse a relative local output path (``outputs``: field name -> path;
    None and ``s3://`` URLs pass): it would be written into Ray's temporary working folder."""
    job = current_ray_job(environ)
    if job is None:
        return
    for name, value in outputs.items():
        if value is None or "://" in os.fspath(value) or Path(value).is_absolute():
            continue
        raise InputError(
            f"{name}: {os.fspath(value)!r} is a relative path, but this command runs as Ray job "
            f"{job.submission_id}, in Ray's temporary copy of its --working-dir ({Path.cwd()}), which "
            "Ray deletes: what is written there is lost. Give an absolute path on storage every node "
            "reaches (e.g. /shared/spinfits/store) or an s3:// URL"
        )
