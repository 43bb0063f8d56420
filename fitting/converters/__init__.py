"""Converters from what users hold to SPIN's dataset npz (``spinfits data from-*``).

- ``openpose_folder``: a folder of OpenPose BODY_25 JSON files plus their images; one row per
  detected person, SPIN's box from the keypoints, no ground truth.
- ``coco``: COCO person keypoint annotations, as SPIN's ``datasets/preprocess/coco.py``.
- ``mmpose_3dhp``: mmpose's MPI-INF-3DHP npz (17 joints, 2D and 3D) in SPIN's 24-joint order.

Each returns a ``ConvertedDataset`` (``spin_rows``); ``write_spin_npz`` writes it and loads it
back with ``spinfits.fitting.data.dataset.load_spin_npz``.
"""
