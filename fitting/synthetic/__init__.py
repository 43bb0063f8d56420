"""Generated data: what tests, demos and the keypoint regressor need, and precompute does not.

Nothing here is imported by the fitting engine (``SMPLify``, ``OfflineFitter``); fitting real
datasets with real SMPL files never loads these modules.

- ``people``: synthetic datasets in SPIN's npz layout with known ground truth
  (``SyntheticConfig``, ``make_synthetic_dataset``, ``write_synthetic_dataset``).
- ``natural_poses``: an anatomy-based sampler of everyday body poses (people, stand-in prior).
- ``render``: a small z-buffer rasteriser drawing people's 224-px crops (demo images).
- ``regressor_training``: trains ``fitting.offline.keypoint_regressor.KeypointRegressor`` on synthetic
  people's projected keypoints (``spinfits init train-regressor``).
- ``standin``: the stand-in body model, SMPL-format files generated from shipped data
  (``spinfits model make-standin``).
"""
