"""SMPL with SPIN's 49 joints, on top of ``smplx.SMPL``.

The 49 joints are SPIN's: 25 OpenPose joints then 24 ground-truth joints, taken from the 24
skeleton joints, smplx's 21 vertex keypoints and the 9 joints of ``J_regressor_extra``
(see ``spinfits.fitting.body.joints``). Works on any device; the model's arrays are loaded once by
``spinfits.fitting.body.model_files.load_body_model_files``.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import smplx
import torch
from smplx.utils import Struct

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SPIN_JOINT_SOURCE
from spinfits.fitting.body.model_files import BodyModelFiles


@dataclass(frozen=True)
class BodyOutput:
    """Result of a body model evaluation (B batch, V vertices).

    Fields:
        joints: (B, 49, 3) SPIN's joints, metres, model frame (no camera translation).
        smpl_joints: (B, 24, 3) SMPL's skeleton joints.
        vertices: (B, V, 3) mesh vertices, or None unless asked for.
    """

    joints: torch.Tensor
    smpl_joints: torch.Tensor
    vertices: torch.Tensor | None


class SpinBodyModel(torch.nn.Module):
    """SMPL (any SMPL-format file, real or stand-in) returning SPIN's 49 joints.

    Convention: pose is axis-angle in radians, (B, 72) = global orientation (3) then 23 body
    joints (69), each relative to its parent; the rest pose is SMPL's T-pose, y up, facing +z.
    """

    def __init__(
        self,
        files: BodyModelFiles,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.files = files
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note on 10 betas
            self.smpl = smplx.SMPL(
                model_path="",
                data_struct=Struct(**files.smpl.as_smplx_struct_dict()),
                create_betas=False,
                create_global_orient=False,
                create_body_pose=False,
                create_transl=False,
                num_betas=10,
                dtype=dtype,
            )
        self.register_buffer("J_regressor_extra", torch.as_tensor(files.J_regressor_extra, dtype=dtype))
        self.register_buffer("joint_source", torch.as_tensor(SPIN_JOINT_SOURCE, dtype=torch.long))
        self.to(device)

    @property
    def faces(self) -> torch.Tensor:
        """(F, 3) long triangle vertex indices."""
        return torch.as_tensor(self.files.smpl.faces, dtype=torch.long)

    def forward(self, pose: torch.Tensor, betas: torch.Tensor, return_vertices: bool = False) -> BodyOutput:
        """Evaluate the body.

        Args:
            pose: (B, 72) axis-angle, radians.
            betas: (B, 10) shape coefficients.
            return_vertices: also return the (B, V, 3) vertices.
        """
        _check_batch(pose, betas, self.J_regressor_extra)
        return self._evaluate(pose[:, :3], pose[:, 3:], betas, True, return_vertices)

    def forward_rotmat(
        self, rotmat: torch.Tensor, betas: torch.Tensor, return_vertices: bool = False
    ) -> BodyOutput:
        """Evaluate the body from rotation matrices (a regressor's output, differentiable).

        Args:
            rotmat: (B, 24, 3, 3) per-joint rotations, global orientation first.
            betas: (B, 10) shape coefficients.
        """
        if not isinstance(rotmat, torch.Tensor) or tuple(rotmat.shape[1:]) != (24, 3, 3):
            raise InputError(f"rotmat must be (B, 24, 3, 3), got {_describe(rotmat)}")
        _check_betas(rotmat, betas, self.J_regressor_extra)
        return self._evaluate(rotmat[:, :1], rotmat[:, 1:], betas, False, return_vertices)

    def _evaluate(
        self,
        global_orient: torch.Tensor,
        body_pose: torch.Tensor,
        betas: torch.Tensor,
        pose2rot: bool,
        return_vertices: bool,
    ) -> BodyOutput:
        output = self.smpl(
            global_orient=global_orient,
            body_pose=body_pose,
            betas=betas,
            return_verts=True,
            pose2rot=pose2rot,
        )
        extra = torch.einsum("jv,bvc->bjc", self.J_regressor_extra, output.vertices)
        all_joints = torch.cat([output.joints, extra], dim=1)  # (B, 54, 3)
        joints = all_joints[:, self.joint_source]
        return BodyOutput(
            joints=joints,
            smpl_joints=output.joints[:, :24],
            vertices=output.vertices if return_vertices else None,
        )


def _check_batch(pose: torch.Tensor, betas: torch.Tensor, reference: torch.Tensor) -> None:
    if not isinstance(pose, torch.Tensor) or pose.ndim != 2 or pose.shape[1] != 72:
        raise InputError(
            f"pose must be a (B, 72) tensor of axis-angle parameters, got "
            f"{_describe(pose)}; for one sample use pose[None]"
        )
    _check_betas(pose, betas, reference)


def _check_betas(pose: torch.Tensor, betas: torch.Tensor, reference: torch.Tensor) -> None:
    """betas (B, 10) beside a checked pose (axis-angle or rotations); both on the model's
    device and dtype."""
    if not isinstance(betas, torch.Tensor) or betas.ndim != 2 or betas.shape[1] != 10:
        raise InputError(
            f"betas must be a (B, 10) tensor, got {_describe(betas)}; for one sample use betas[None]"
        )
    if pose.shape[0] != betas.shape[0]:
        raise InputError(
            f"pose and betas must have the same batch size, got {pose.shape[0]} and {betas.shape[0]}"
        )
    for name, tensor in (("pose", pose), ("betas", betas)):
        if tensor.device != reference.device or tensor.dtype != reference.dtype:
            raise InputError(
                f"{name} is {tensor.dtype} on {tensor.device}, the body model is "
                f"{reference.dtype} on {reference.device}; move it with "
                f"{name}.to(device=..., dtype=...)"
            )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"
