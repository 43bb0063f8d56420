import numpy as np
import pytest

from spinfits.errors import InputError
from spinfits.store import Proposals, Source


def _kwargs(m=3, **over):
    base = dict(
        rows=np.arange(m),
        pose=np.zeros((m, 72)),
        betas=np.zeros((m, 10)),
        cam_t=np.zeros((m, 3)),
        loss=np.ones(m),
        source=Source.IN_LOOP,
        step=7,
        time=12.5,
    )
    base.update(over)
    return base


def test_smoke_normalises_dtypes_and_broadcasts_scalars():
    p = Proposals(**_kwargs())
    assert p.rows.dtype == np.int64 and p.pose.dtype == np.float32 and p.loss.dtype == np.float32
    assert p.source.tolist() == [2, 2, 2] and p.source.dtype == np.int8
    assert p.step.tolist() == [7, 7, 7] and p.time.tolist() == [12.5] * 3
    assert len(p) == 3


def test_time_defaults_to_construction_time_and_is_kept():
    p = Proposals(**_kwargs(time=None))
    assert np.all(p.time > 1.6e9) and np.unique(p.time).size == 1


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("pose", np.zeros((3, 69)), r"pose must have shape \(3, 72\), got \(3, 69\)"),
        ("betas", np.zeros((2, 10)), r"betas has 2 rows but rows has 3"),
        ("cam_t", np.zeros(3), r"cam_t must have shape \(3, 3\)"),
        ("loss", np.ones((3, 1)), r"loss must have shape \(3,\)"),
        ("pose", np.zeros((3, 72), dtype=np.int32), r"pose must be a floating array"),
        ("pose", np.full((3, 72), "a"), r"pose must be a numeric array"),
        ("rows", np.array([0.0, 1.0, 2.0]), r"rows must be an integer array"),
        ("rows", np.array([0, -1, 2]), r"rows must be >= 0"),
        (
            "rows",
            np.array([0, 2**64 - 1, 2], dtype=np.uint64),
            r"rows must be dataset row numbers, got 18446744073709551615 \(uint64\), beyond any dataset",
        ),
        ("rows", np.zeros((3, 1), dtype=int), r"rows must have shape \(M,\)"),
        ("source", 0, r"source must be one of"),
        ("source", 9, r"source must be one of"),
        ("step", 1.5, r"step must be an integer"),
        ("step", np.arange(2), r"step must be a scalar or shape \(3,\)"),
        ("time", np.nan, r"time must be finite"),
    ],
)
def test_exceptions_say_what_was_expected(field, value, message):
    with pytest.raises(InputError, match=message):
        Proposals(**_kwargs(**{field: value}))


def test_nonfinite_parameters_with_nonfinite_loss_are_allowed():
    pose = np.zeros((3, 72))
    pose[1, 5] = np.nan
    p = Proposals(**_kwargs(pose=pose, loss=np.array([1.0, np.nan, 2.0])))
    assert np.isnan(p.pose[1, 5])


def test_empty_proposals():
    p = Proposals(**_kwargs(m=0))
    assert len(p) == 0 and p.pose.shape == (0, 72)
