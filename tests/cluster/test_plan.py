import numpy as np

from spinfits.cluster.plan import plan_rows


def test_plan_takes_rows_without_fit_and_skips_unfittable():
    loss = np.array([np.inf, 3.0, np.inf, np.inf, 1.0, np.inf])
    counts = np.array([10, 10, 2, 10, 10, 10])
    plan = plan_rows(loss, counts, refit=False, shard_size=2, min_keypoints=4)
    assert plan.pending.tolist() == [0, 3, 5]
    assert [s.tolist() for s in plan.shards] == [[0, 3], [5]]
    assert plan.unfittable.tolist() == [2]
    assert plan.already_fitted == 2


def test_refit_plans_every_fittable_row_and_finished_plans_nothing():
    loss = np.array([2.0, 3.0, np.inf])
    counts = np.array([10, 10, 0])
    assert plan_rows(loss, counts, refit=True, shard_size=5, min_keypoints=4).pending.tolist() == [0, 1]
    done = plan_rows(loss, counts, refit=False, shard_size=5, min_keypoints=4)
    assert done.shards == () and done.already_fitted == 2
