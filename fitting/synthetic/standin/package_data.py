"""Paths of the stand-in's source files shipped in this package, and the tools that build them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from spinfits.errors import InputError

BODY_SOURCE = "standin_body.npz"
CORRECTIVES_SOURCE = "standin_correctives.npz"
#: The anatomy prior (``make-standin --prior anatomy``); the mocap one is in ``mocap_prior``.
PRIOR_SOURCE = "standin_pose_prior.npz"
MOCAP_POSES = "standin_mocap_poses.npz"
MOCAP_PRIOR = "standin_mocap_prior.npz"
PROVENANCE = "PROVENANCE.md"

_BUILDERS = {
    BODY_SOURCE: "tools/build_standin_source.py",
    CORRECTIVES_SOURCE: "tools/build_standin_correctives.py",
    PRIOR_SOURCE: "tools/build_standin_prior.py --prior anatomy",
    MOCAP_POSES: "tools/build_standin_prior.py --prior mocap",
    MOCAP_PRIOR: "tools/build_standin_prior.py --prior mocap",
}


def packaged(name: str) -> Path:
    """The path of the shipped source file ``name``; a clear error if the install lacks it."""
    path = Path(str(resources.files("spinfits.fitting.synthetic.standin") / name))
    if not path.is_file():
        raise InputError(
            f"the stand-in source file {name} is missing from the installed package ({path}); "
            f"reinstall spinfits or rebuild it with {_BUILDERS.get(name, 'tools/build_standin_source.py')}"
        )
    return path
