"""``spinfits eval`` and ``spinfits store eval`` end to end through ``spinfits.cli.main``: synthetic
people with known ground truth (stand-in body and its stand-in Human3.6M regressor), the four real
Human3.6M frames, and the errors a user gets."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from spinfits.cli import main
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.smplify.fit_loss import score_fits
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset
from spinfits.store import BodyModelInfo, FitStore, Proposals, Source

ROWS = 8
UNFITTED = (0, 3)
NAME = "people"


@dataclass(frozen=True)
class Setup:
    """path/images: a synthetic dataset with rendered crops; checkpoint: a small regressor's
    training_state.pt folder; store: fits of every row but UNFITTED, tagged "static" (the
    ground truth's pose perturbed) and then improved to the ground truth (tip of main)."""

    path: Path
    images: Path
    checkpoint: Path
    store: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory, standin_files) -> Setup:
    from spinfits.fitting.data.mean_params import spin_mean_params_path
    from spinfits.training.checkpoint import TrainingState, save_training_state
    from spinfits.training.regressor import HMR, RegressorConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("eval_cli")
        path, images = root / f"{NAME}.npz", root / "images"
        write_synthetic_dataset(path, standin_files, SyntheticConfig(rows=ROWS, seed=5), images_dir=images)
        torch.manual_seed(0)
        model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone="small"))
        checkpoint = root / "checkpoint_000001"
        checkpoint.mkdir()
        save_training_state(
            checkpoint,
            TrainingState(
                step=7,
                snapshot_id="none",
                model=model.state_dict(),
                optimizer={},
                run="eval-test",
                backbone="small",
                input_res=64,
            ),
        )
        arrays, dataset = dict(np.load(path)), load_spin_npz(path)
        store = FitStore.create(root / "store", BodyModelInfo(standin_files.fingerprint, is_standin=True))
        store.create_dataset(NAME, ROWS, dataset_fingerprint=dataset.fingerprint)
        rows = np.setdiff1d(np.arange(ROWS), UNFITTED)
        pose, betas = arrays["pose"][rows].astype(np.float32), arrays["shape"][rows].astype(np.float32)
        perturbed = pose + np.random.default_rng(1).normal(0, 0.2, pose.shape).astype(np.float32)
        perturbed[:, :3] = pose[:, :3]
        for version_pose in (perturbed, pose):
            loss = score_fits(standin_files, version_pose, betas, dataset.keypoints[rows])
            store.merge(
                NAME,
                Proposals(rows, version_pose, betas, arrays["gt_cam_t"][rows], loss, Source.OFFLINE, 0, 1.0),
            )
            store.commit("fits")
            if version_pose is perturbed:
                store.history.tag("static")
    finally:
        torch.set_num_threads(threads)
    return Setup(path, images, checkpoint, root / "store")


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_eval_prints_spins_figures_and_writes_json(setup, standin_dir, tmp_path, capsys):
    out_json, predictions = tmp_path / "eval.json", tmp_path / "predictions.npz"
    status, out, err = run(
        capsys,
        "eval",
        "--checkpoint",
        setup.checkpoint,
        "--dataset",
        setup.path,
        "--images",
        setup.images,
        "--model-dir",
        standin_dir,
        "--batch",
        "3",
        "--device",
        "cpu",
        "--json",
        out_json,
        "--predictions",
        predictions,
    )
    assert status == 0, err
    assert "step 7" in out and "STAND-IN Human3.6M regressor" in out and "S (the dataset's 3D joints)" in out
    for line in (
        "LSP-14 (SPIN's 49 joints, mid-hip root)",
        "H36M-14 (J_regressor_h36m",
        "H36M-17",
        "2D PCK@0.05",
    ):
        assert line in out
    assert "eval" in err  # the progress bar
    figures = json.loads(out_json.read_text())
    assert figures["rows"] == ROWS and figures["step"] == 7 and figures["body_model_is_standin"]
    assert figures["h36m_regressor_is_standin"] and figures["device"] == "cpu"
    assert set(figures["protocols"]) == {"lsp14", "h36m14", "h36m17"}
    for protocol in figures["protocols"].values():
        assert protocol["rows"] == ROWS and protocol["pa_mpjpe_mm"] <= protocol["mpjpe_mm"]
    assert figures["per_action"] == {}
    assert 0.0 <= figures["pck"]["pck"] <= 1.0 and figures["pck"]["threshold_px"] == pytest.approx(11.2)
    saved = np.load(predictions)
    assert saved["pose"].shape == (ROWS, 72) and saved["mpjpe_h36m14"].shape == (ROWS,)
    assert 1000 * saved["mpjpe_h36m14"].mean() == pytest.approx(figures["protocols"]["h36m14"]["mpjpe_mm"])


def test_eval_reads_spins_released_checkpoint_layout(setup, standin_dir, tmp_path, capsys):
    """SPIN's model_checkpoint.pt layout ({'model': HMR state dict, 'optimizer', 'epoch', ...}),
    as `train --pretrained` reads it; the backbone is told by the weights, the input is SPIN's 224 px."""
    from spinfits.training.checkpoint import load_training_state

    state = load_training_state(setup.checkpoint).model
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": state, "optimizer": {}, "epoch": 3, "batch_idx": 0, "total_step_count": 9}, path)
    out_json = tmp_path / "eval.json"
    status, out, err = run(
        capsys, "eval", "--checkpoint", path, "--dataset", setup.path, "--images", setup.images,
        "--model-dir", standin_dir, "--device", "cpu", "--no-progress", "--json", out_json,
    )  # fmt: skip
    assert status == 0, err
    assert f"checkpoint:    {path} (spin layout ('model' entry), small backbone)" in out
    figures = json.loads(out_json.read_text())
    assert figures["rows"] == ROWS and figures["run"] is None and figures["step"] is None
    torchvision = tmp_path / "resnet.pth"
    torch.save(
        {name: value for name, value in state.items() if name.startswith(("conv1", "bn1", "layer"))},
        torchvision,
    )
    status, out, err = run(
        capsys, "eval", "--checkpoint", torchvision, "--dataset", setup.path, "--images", setup.images,
        "--model-dir", standin_dir,
    )  # fmt: skip
    assert status == 2 and "is torchvision's resnet50 (a backbone without SPIN's regressor head)" in err


def test_eval_on_the_real_h36m_frames_breaks_down_per_action(
    setup, standin_dir, shared_data, tmp_path, capsys
):
    out_json = tmp_path / "h36m.json"
    status, out, err = run(
        capsys,
        "eval",
        "--checkpoint",
        setup.checkpoint / "training_state.pt",
        "--dataset",
        shared_data / "h36m_spin_sample.npz",
        "--images",
        shared_data / "h36m_images",
        "--model-dir",
        standin_dir,
        "--json",
        out_json,
        "--no-progress",
    )
    assert status == 0, err
    assert "per action, H36M-14" in out
    for action in ("Directions", "Greeting", "SittingDown", "WalkDog"):
        assert action in out
    figures = json.loads(out_json.read_text())
    assert list(figures["per_action"]) == ["Directions", "Greeting", "SittingDown", "WalkDog"]
    assert all(v["h36m14"]["rows"] == 1 for v in figures["per_action"].values())
    assert np.isfinite(figures["protocols"]["h36m14"]["pa_mpjpe_mm"])


def test_store_eval_ground_truth_fits_score_zero_and_static_fits_worse(setup, standin_dir, tmp_path, capsys):
    out_json = tmp_path / "store.json"
    status, out, err = run(
        capsys,
        "store",
        "eval",
        setup.store,
        NAME,
        "--dataset",
        setup.path,
        "--model-dir",
        standin_dir,
        "--version",
        "static",
        "--version",
        "main",
        "--json",
        out_json,
    )
    assert status == 0, err
    # --dataset (the file, before issue 26's one naming) still works and says what replaced it
    assert f"warning: `spinfits store eval --dataset {setup.path}` is deprecated: the file is --npz" in err
    header = next(line for line in out.splitlines() if line.startswith("protocol"))
    assert "MPJPE static" in header and "PA-MPJPE main" in header
    assert "rows evaluated: static 6, main 6" in out
    versions = json.loads(out_json.read_text())["versions"]
    static, tip = versions["static"], versions["main"]
    for figures in (static, tip):
        assert figures["rows_with_fit"] == ROWS - len(UNFITTED) and figures["rows_without_fit"] == 2
        assert figures["rows"] == ROWS - len(UNFITTED)
    assert tip["protocols"]["lsp14"]["mpjpe_mm"] < 0.01  # the ground truth itself
    assert tip["protocols"]["h36m14"]["mpjpe_mm"] < 5  # the stand-in regressor on the posed mesh
    for protocol in ("lsp14", "h36m14", "h36m17"):
        assert static["protocols"][protocol]["mpjpe_mm"] > tip["protocols"][protocol]["mpjpe_mm"] + 20
        assert static["protocols"][protocol]["pa_mpjpe_mm"] > tip["protocols"][protocol]["pa_mpjpe_mm"] + 10
    assert tip["pck"]["pck"] > static["pck"]["pck"]


def test_store_eval_of_a_set_without_3d_ground_truth_is_pck_only(setup, standin_dir, tmp_path, capsys):
    arrays = {k: v for k, v in np.load(setup.path).items() if k not in ("S", "pose", "shape", "has_smpl")}
    np.savez(tmp_path / "2d.npz", **arrays)
    status, out, err = run(
        capsys,
        "store",
        "eval",
        setup.store,
        NAME,
        "--dataset",
        tmp_path / "2d.npz",
        "--model-dir",
        standin_dir,
    )
    assert status == 0, err
    assert "no 3D ground truth in the dataset" in out and "2D PCK only" in out
    assert "% of " in out  # a PCK figure


def test_eval_errors(setup, standin_dir, tmp_path, capsys, other_model_copy):
    common = ["--images", setup.images, "--model-dir", standin_dir, "--no-progress"]
    status, _, err = run(capsys, "eval", "--checkpoint", tmp_path / "nope", "--dataset", setup.path, *common)
    assert status == 2 and "spinfits eval: error: checkpoint" in err and "does not exist" in err
    status, _, err = run(
        capsys, "eval", "--checkpoint", setup.checkpoint, "--dataset", tmp_path / "missing.npz", *common
    )
    assert status == 2 and "spinfits eval: error: dataset file" in err
    arrays = {k: v for k, v in np.load(setup.path).items() if k != "S"}
    np.savez(tmp_path / "no_s.npz", **arrays)
    status, _, err = run(
        capsys, "eval", "--checkpoint", setup.checkpoint, "--dataset", tmp_path / "no_s.npz",
        "--ground-truth", "S", *common,
    )  # fmt: skip
    assert status == 2 and "has no S (3D joints" in err and "'smpl'" in err
    status, _, err = run(
        capsys, "eval", "--checkpoint", setup.checkpoint, "--dataset", setup.path,
        "--images", tmp_path, "--model-dir", standin_dir,
    )  # fmt: skip
    assert status == 2 and "row 0's image) is missing" in err
    store_args = ["store", "eval", setup.store, NAME, "--npz", setup.path]
    status, _, err = run(capsys, "store", "eval", setup.store, NAME, "--model-dir", standin_dir)
    assert (
        status == 2
        and "`spinfits store eval` needs --npz DATA.npz: the SPIN .npz file of the store's dataset" in err
    )
    status, _, err = run(capsys, *store_args, "--model-dir", standin_dir, "--version", "nope")
    assert status == 2 and "spinfits store: error: unknown version 'nope'" in err
    status, _, err = run(capsys, *store_args, "--model-dir", standin_dir, "--pck-alpha", "0")
    assert status == 2 and "spinfits store: error: --pck-alpha must be in (0, 1]" in err
    status, _, err = run(capsys, *store_args, "--model-dir", other_model_copy(standin_dir))
    assert status == 2 and "holds fits of body model" in err
    status, _, err = run(
        capsys, "store", "eval", setup.store, NAME, "--npz", tmp_path / "short.npz",
        "--model-dir", standin_dir,
    )  # fmt: skip
    assert status == 2 and "dataset file" in err
    np.savez(tmp_path / "short.npz", **{k: v[:5] for k, v in np.load(setup.path).items() if np.ndim(v)})
    status, _, err = run(
        capsys, "store", "eval", setup.store, NAME, "--npz", tmp_path / "short.npz",
        "--model-dir", standin_dir,
    )  # fmt: skip
    assert status == 2 and "has 5 rows, dataset 'people' of the store 8" in err
