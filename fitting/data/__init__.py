"""What fits are made from: SPIN's dataset npz and OpenPose JSON, person boxes, SPIN's crop convention,
SPIN's mean parameters, and the checks of files and images a user hands in.

Imports ``spinfits.fitting.body`` (joint tables) and nothing else of ``spinfits.fitting``.

- ``dataset``: Datasets in SPIN's npz layout, and OpenPose BODY_25 JSON, as the keypoints SMPLify fits to.
- ``dataset_joint_maps``: Dataset joint orders and their maps into SPIN's 24 ground-truth joints, as data.
- ``npz_members``: The arrays of an npz archive, read from their .npy headers and in blocks of rows.
- ``person_box``: A person's box in an image, SPIN's way: from a box JSON file or from OpenPose's detections.
- ``spin_crop``: SPIN's crop convention, the one source of its numbers.
- ``mean_params``: SPIN's mean pose and shape (``spin_mean_params.npz``, SPIN's ``smpl_mean_params.npz``).
- ``rgb_image``: The one check of an RGB image array, shared by everything that takes images.
- ``torch_load``: Reading torch files that may be damaged or hostile: errors without torch's bad advice.
"""

from spinfits.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".dataset": "KeypointDataset DatasetRows image_to_crop crop_to_image npz_row_count ROW_ARRAYS FLOAT32_MAX check_keypoints load_spin_npz load_spin_rows read_openpose_json box_from_keypoints",
        ".dataset_joint_maps": "COCO_KEYPOINT_NAMES COCO_TO_SPIN_GT COCO_BODY_JOINTS MMPOSE_3DHP_JOINT_NAMES MMPOSE_3DHP_TO_SPIN_GT MMPOSE_3DHP_ROOT",
        ".npz_members": "unreadable NpyHeader NpzMembers",
        ".person_box": "PersonBox read_bbox_json box_from_openpose_json",
        ".spin_crop": "CROP_RES CROP_CENTER FOCAL_LENGTH BOX_SCALE_PX",
        ".mean_params": "MEAN_PARAMS rot6d_to_axis_angle spin_mean_params_path spin_mean_params",
        ".rgb_image": "check_rgb_image",
        ".torch_load": "describe_load_error",
    },
)
