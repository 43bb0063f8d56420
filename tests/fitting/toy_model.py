"""A random SMPL-format body model (6890 vertices) for exactness tests that need no real body."""

from pathlib import Path

import numpy as np

from spinfits.fitting.body.joints import SMPL_PARENTS
from spinfits.fitting.body.model_files import BodyModelFiles, GmmPrior, SmplArrays

V = 6890


def toy_body_model_files(seed: int = 0, pose_correctives: bool = True) -> BodyModelFiles:
    """Random but well-formed: skinning weights over 1-3 nearby bones, sparse regressors."""
    rng = np.random.default_rng(seed)
    joints = rng.normal(0, 0.3, (24, 3))
    owner = rng.integers(0, 24, V)
    v_template = joints[owner] + rng.normal(0, 0.05, (V, 3))
    weights = np.zeros((V, 24))
    weights[np.arange(V), owner] = 1.0
    second = np.array(SMPL_PARENTS)[owner].clip(0)
    weights[np.arange(V), second] += rng.random(V)
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((24, V))
    for j in range(24):
        ids = rng.choice(np.nonzero(owner == j)[0], 6)
        regressor[j, ids] = rng.random(6)
    regressor /= regressor.sum(1, keepdims=True)
    extra = np.zeros((9, V))
    for j in range(9):
        ids = rng.choice(V, 12, replace=False)
        extra[j, ids] = rng.random(12)
    extra /= extra.sum(1, keepdims=True)
    posedirs = rng.normal(0, 0.01, (V, 3, 207)) if pose_correctives else np.zeros((V, 3, 207))
    smpl = SmplArrays(
        v_template=v_template,
        shapedirs=rng.normal(0, 0.02, (V, 3, 10)),
        posedirs=posedirs,
        J_regressor=regressor,
        weights=weights,
        kintree_table=np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.int64),
        faces=rng.integers(0, V, (100, 3)),
    )
    covars = np.stack([np.diag(rng.uniform(0.05, 0.3, 69)) for _ in range(8)])
    gmm = GmmPrior(means=rng.normal(0, 0.2, (8, 69)), covars=covars, weights=np.full(8, 1 / 8))
    return BodyModelFiles(
        directory=Path("toy"),
        smpl=smpl,
        J_regressor_extra=extra,
        gmm=gmm,
        standin_parts=("toy",),
        provenance="random toy model for tests",
    )
