"""Training checkpoints: a round trip restores model, optimiser, step and snapshot; bad files
say what to do."""

import io
import pickle

import pytest
import torch

from spinfits.errors import InputError
from spinfits.training.checkpoint import (
    STATE_FILE,
    TrainingState,
    load_training_state,
    prepared_with_optimizer,
    save_training_state,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trained(small_regressor):
    """A small regressor and its Adam optimiser after one step (so the optimiser has state)."""
    model = small_regressor()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    out = model(torch.randn(2, 3, 64, 64))
    (out.betas.square().mean() + out.camera.square().mean()).backward()
    optimizer.step()
    return model, optimizer


def test_round_trip_restores_model_optimizer_step_and_snapshot(tmp_path, small_regressor):
    model, optimizer = _trained(small_regressor)
    state = TrainingState(
        step=50,
        snapshot_id="ABCDEFGHIJKLMNOPQRST",
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        run="spin-1",
        backbone="small",
        input_res=96,
    )
    path = save_training_state(tmp_path, state)
    assert path == tmp_path / STATE_FILE and path.is_file()
    loaded = load_training_state(tmp_path)
    assert (loaded.backbone, loaded.input_res) == ("small", 96)
    assert (loaded.step, loaded.snapshot_id, loaded.run) == (50, "ABCDEFGHIJKLMNOPQRST", "spin-1")
    assert loaded.model.keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.model[name], value), name
    # a fresh model and optimiser restored from it continue exactly where the saved ones were
    fresh = small_regressor()
    for parameter in fresh.parameters():
        parameter.data.add_(1.0)  # anything else
    fresh.load_state_dict(loaded.model)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    fresh_optimizer.load_state_dict(loaded.optimizer)
    images = torch.randn(2, 3, 64, 64)
    for net, opt in ((model, optimizer), (fresh, fresh_optimizer)):
        net.eval()
        opt.zero_grad()
        net(images).betas.square().mean().backward()
        opt.step()
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def test_optimizer_state_follows_the_parameters_to_the_workers_device(tmp_path, small_regressor):
    """Resume on a GPU: the checkpoint is read to the CPU, Ray Train's prepare_model moves the
    model; Adam's moments must end up beside the parameters (a ``meta`` device stands in for
    CUDA: any device other than the checkpoint's)."""
    model, optimizer = _trained(small_regressor)
    state = TrainingState(3, "S" * 20, model.state_dict(), optimizer.state_dict(), "spin-1", "small", 96)
    save_training_state(tmp_path, state)
    loaded = load_training_state(tmp_path)  # tensors on the CPU
    moved, restored = prepared_with_optimizer(small_regressor(), loaded, 1e-3, lambda m: m.to("meta"))
    moments = [
        (name, value.device)
        for parameter in moved.parameters()
        for name, value in restored.state[parameter].items()
        if name != "step"  # Adam keeps its step count on the CPU by design
    ]
    assert moments and all(device.type == "meta" for _, device in moments), moments
    assert len(restored.state) == len(list(moved.parameters()))
    assert restored.param_groups[0]["lr"] == 1e-3
    # a new run (no state): a fresh optimiser over the moved parameters
    fresh, optimizer = prepared_with_optimizer(small_regressor(), None, 1e-3, lambda m: m.to("meta"))
    assert not optimizer.state and all(p.device.type == "meta" for p in optimizer.param_groups[0]["params"])


def test_missing_checkpoint(tmp_path):
    with pytest.raises(
        InputError,
        match=rf"{tmp_path} is not a spinfits training checkpoint: "
        rf"{STATE_FILE} is missing",
    ):
        load_training_state(tmp_path)
    with pytest.raises(InputError, match="is not a spinfits training checkpoint"):
        load_training_state(tmp_path / "no_such_folder")


def _saved_bytes(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


GOOD = dict(step=1, snapshot_id="S", model={}, optimizer={}, run="r")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(_saved_bytes(GOOD)[:200], id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(_saved_bytes({"step": 3}), id="missing-keys"),
    ],
)
def test_corrupt_checkpoint(tmp_path, content):
    (tmp_path / STATE_FILE).write_bytes(content)
    with pytest.raises(
        InputError,
        match=rf"training checkpoint {tmp_path / STATE_FILE} cannot "
        r"be read .*; resume from an earlier checkpoint or start "
        r"a new run",
    ):
        load_training_state(tmp_path)


class _NotWeights:
    """Something torch.load(weights_only=True) refuses to unpickle."""


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"this is not a checkpoint at all", id="garbage"),
        pytest.param(pickle.dumps({"step": 1}), id="plain-pickle"),
        pytest.param(_saved_bytes({**GOOD, "model": _NotWeights()}), id="not-weights-only"),
        pytest.param(_saved_bytes([1, 2, 3]), id="not-a-dict"),
    ],
)
def test_corrupt_checkpoint_of_other_kinds(tmp_path, content):
    (tmp_path / STATE_FILE).write_bytes(content)
    with pytest.raises(InputError, match=r"cannot be read"):
        load_training_state(tmp_path)


def test_a_checkpoint_holding_code_is_refused_without_advice_to_run_it(tmp_path):
    import os

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({**GOOD, "model": Payload()}, tmp_path / STATE_FILE)
    with pytest.raises(
        InputError,
        match=r"it holds a pickled (posix|os)\.system, not only tensors and plain "
        r"values \(nothing from it was run\)",
    ) as caught:
        load_training_state(tmp_path)
    assert "weights_only=False" not in str(caught.value) and not marker.exists()
