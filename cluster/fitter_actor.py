"""The Ray actor that fits shards of a dataset with ``spinfits.fitting``."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import ray
import torch

from spinfits.fitting.body.joints import NUM_SPIN_JOINTS
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.device import (
    device_memory,
    is_device_failure,
    is_out_of_memory,
    pin_ieee_float32,
    solver_slots_for,
)
from spinfits.fitting.offline.config import OfflineConfig
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.offline.refine import refine_fits

logger = logging.getLogger(__name__)


#: Reason recorded for a row whose keypoints are not finite in float32.
NONFINITE_KEYPOINTS = "keypoints are not finite in float32 (NaN, or beyond +-3.4e38)"
#: Reason recorded for a row whose fit came out non-finite.
DIVERGED = "the fit diverged: non-finite pose, shape, camera or loss"


@dataclass(frozen=True)
class ShardResult:
    """Fits of one shard (S rows), as numpy, ready to become store proposals.

    Fields: rows (S,) int64; pose (S, 72); betas (S, 10); cam_t (S, 3); loss (S,) (NaN: no fit);
    failed_rows (F,) int64 dataset rows that could not be fitted, failed_reasons: F texts;
    seconds: fitting time; worker: "host:pid" of the actor that made it.
    """

    rows: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    cam_t: np.ndarray
    loss: np.ndarray
    seconds: float
    worker: str
    failed_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    failed_reasons: tuple[str, ...] = ()


class FitterActor:
    """Loads the body model once, then fits shards of rows on its device: from keypoints alone
    (``OfflineFitter``), or refining the initial pose/betas sent with a shard. The keypoints come
    with each shard, so an actor holds no dataset-wide array (its memory does not grow with the
    dataset) and the dataset file need not be reachable from its node.
    """

    def __init__(
        self,
        model_dir: str,
        config: OfflineConfig,
        device: str,
        threads: int,
        device_share: float | None = None,
    ) -> None:
        """``device_share``: the share of a CUDA device this actor holds (``--gpus-per-worker``)
        when its solver slots are to be chosen from the device's memory (``solver_slots_for``);
        None keeps ``config``'s."""
        if device == "cpu":
            torch.set_num_threads(threads)
        pin_ieee_float32()  # no TF32 in this process, whatever the node's defaults
        config = slots_for_device(config, device, device_share)
        self.fitter = OfflineFitter(load_body_model_files(model_dir), config, device=device)
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    def solver_slots(self) -> int:
        """The solver slots this actor fits with (``SmplifyConfig.batch_size``)."""
        return self.fitter.config.smplify.batch_size

    def pid(self) -> int:
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this actor runs on (hex id, as ``ray.nodes()`` gives ``NodeID``)."""
        return ray.get_runtime_context().get_node_id()

    def fit_shard(
        self,
        rows: np.ndarray,
        keypoints: np.ndarray,
        init_pose: np.ndarray | None = None,
        init_betas: np.ndarray | None = None,
    ) -> ShardResult:
        """Fit ``rows`` ((S,) dataset rows) from their ``keypoints`` ((S, 49, 3) crop pixels x, y,
        confidence); a row that cannot be fitted is reported in ``failed_rows`` with its reason,
        and the others are fitted anyway (an error is narrowed down by halving, out-of-memory
        too). A device failure ends the actor's process instead (``_end_process_for``)."""
        start = time.perf_counter()
        count = len(rows)
        keypoints = np.asarray(keypoints)
        if keypoints.shape != (count, NUM_SPIN_JOINTS, 3):
            raise ValueError(
                f"keypoints must be ({count}, {NUM_SPIN_JOINTS}, 3) for {count} rows, got {keypoints.shape}"
            )
        out = {
            "pose": np.zeros((count, 72), np.float32),
            "betas": np.zeros((count, 10), np.float32),
            "cam_t": np.zeros((count, 3), np.float32),
            "loss": np.full(count, np.nan, np.float32),
        }
        reasons: dict[int, str] = {}
        finite = np.isfinite(keypoints).all(axis=(1, 2))
        reasons.update({int(k): NONFINITE_KEYPOINTS for k in np.flatnonzero(~finite)})
        self._fit_isolated(np.flatnonzero(finite), keypoints, init_pose, init_betas, out, reasons)
        failed = np.array(sorted(reasons), dtype=np.int64)
        if failed.size:
            out["loss"][failed] = np.nan
            logger.warning(
                "%d of %d rows could not be fitted (first: row %d, %s)",
                failed.size,
                count,
                int(rows[failed[0]]),
                reasons[int(failed[0])],
            )
        return ShardResult(
            rows=rows,
            **out,
            seconds=time.perf_counter() - start,
            worker=self.worker,
            failed_rows=np.asarray(rows)[failed].astype(np.int64),
            failed_reasons=tuple(reasons[int(k)] for k in failed),
        )

    def _fit_isolated(
        self,
        positions: np.ndarray,
        keypoints: np.ndarray,
        init_pose: np.ndarray | None,
        init_betas: np.ndarray | None,
        out: dict[str, np.ndarray],
        reasons: dict[int, str],
    ) -> None:
        """Fit the shard rows at ``positions`` into ``out``; an error splits them in halves until
        the rows that raise it are alone, and each of those gets the error as its reason."""
        if positions.size == 0:
            return
        failure, out_of_memory = None, False
        try:
            if init_pose is None:
                result = self.fitter.fit(keypoints[positions])
            else:
                result = refine_fits(
                    self.fitter.smplify, init_pose[positions], init_betas[positions], keypoints[positions]
                )
        except Exception as error:  # one bad row must not stop the shard
            if is_device_failure(error):  # not the rows: the device's context is lost
                _end_process_for(error, self.worker)
                raise  # only where end_process is replaced (tests)
            first_line = (str(error).strip().splitlines() or [""])[0]
            failure = f"fitting raised {type(error).__name__}: {first_line}"
            out_of_memory = is_out_of_memory(error)
        # retried outside the except block: its traceback holds the failed attempt's tensors
        if failure is not None:
            if out_of_memory and self.fitter.smplify.device.type == "cuda":
                torch.cuda.empty_cache()
            if positions.size == 1:
                reasons[int(positions[0])] = failure
                return
            half = positions.size // 2
            self._fit_isolated(positions[:half], keypoints, init_pose, init_betas, out, reasons)
            self._fit_isolated(positions[half:], keypoints, init_pose, init_betas, out, reasons)
            return
        for name in out:
            out[name][positions] = getattr(result, name).detach().cpu().numpy()
        diverged = ~(
            np.isfinite(out["loss"][positions])
            & np.isfinite(out["pose"][positions]).all(1)
            & np.isfinite(out["betas"][positions]).all(1)
            & np.isfinite(out["cam_t"][positions]).all(1)
        )
        reasons.update({int(k): DIVERGED for k in positions[diverged]})


def slots_for_device(config: OfflineConfig, device: str, device_share: float | None) -> OfflineConfig:
    """``config`` with solver slots chosen from the memory of the CUDA ``device`` for an actor
    holding ``device_share`` of it (``fitting.device.solver_slots_for``); unchanged on the CPU or
    when ``device_share`` is None (slots given by the user)."""
    if device_share is None or torch.device(device).type != "cuda":
        return config
    memory = device_memory(device)
    slots = solver_slots_for(memory, device_share)
    logger.info(
        "fitter on %s: %d solver slots for %.2g of %.1f GiB (pass --solver-slots to choose)",
        device,
        slots,
        device_share,
        memory / 2**30,
    )
    return dataclasses.replace(config, smplify=dataclasses.replace(config.smplify, batch_size=slots))


#: Exit status of a fitter actor that ends itself after a device failure (Ray restarts it).
DEVICE_FAILURE_EXIT = 75


def end_process(status: int) -> None:
    """End this process at once (no cleanup: a CUDA context in error cannot be torn down)."""
    logging.shutdown()
    os._exit(status)


def _end_process_for(error: BaseException, worker: str) -> None:
    """A device failure (``fitting.device.is_device_failure``: an illegal address, a device-side
    assert): every later CUDA call of this process would fail too, and each row would be
    recorded as failed and skipped by reruns. The actor's process ends instead, so Ray
    restarts the actor on a fresh CUDA context and retries its unfinished shards."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    logger.error(
        "fitter %s: device failure (%s: %s); the actor exits so that Ray restarts it and retries its shard",
        worker,
        type(error).__name__,
        first_line,
    )
    end_process(DEVICE_FAILURE_EXIT)


def remote_fitter_class(num_cpus: float, num_gpus: float, actor: type | None = None):
    """``FitterActor`` (or ``actor``, a subclass) as a fault-tolerant Ray actor: a killed actor,
    or one that ended itself after a device failure, restarts and its unfinished shards are
    retried (max_restarts / max_task_retries unlimited)."""
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=-1, max_task_retries=-1)(
        actor or FitterActor
    )
