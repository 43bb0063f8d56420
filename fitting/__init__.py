"""spinfits.fitting: batched SMPLify in PyTorch, and everything a fit needs. Knows nothing of storage or Ray.

Its parts, each a package that exports its public names, in the order they build on each other:

- ``body``: SMPL's files, SMPL with SPIN's 49 joints, the joints-only fast path, joint tables, rotations.
- ``data``: SPIN's dataset npz and OpenPose JSON, person boxes, SPIN's crop convention, mean parameters.
- ``smplify``: ``SMPLify`` (SPIN's objective), its losses, priors, camera, stages, solver and config.
- ``offline``: fits from keypoints alone (``OfflineFitter``): initial camera, hypotheses, regressor.
- ``evaluation``: metrics, ground truth, per-row scores and summaries, fits drawn over images.
- ``converters``: users' formats (OpenPose folders, COCO, mmpose) to SPIN's npz.
- ``synthetic``: generated data (synthetic people, renders, the stand-in's sources); the fitter never
  imports it.

The names most callers need are here too: ``from spinfits.fitting import SMPLify, SmplifyConfig``.
Importing a package loads nothing else until a name is used (``spinfits.exports``).
"""

from spinfits.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".body.model_files": "BodyModelFiles load_body_model_files",
        ".body.body_model": "SpinBodyModel",
        ".data.dataset": "KeypointDataset load_spin_npz",
        ".smplify.fitter": "SMPLify",
        ".smplify.config": "SmplifyConfig FitResult",
        ".offline.config": "OfflineConfig default_offline_config",
        ".offline.fitter": "OfflineFitter",
        ".evaluation.fit_evaluation": "Evaluator",
    },
)
