"""The PrecomputeConfig of the precompute tests: tiny shards, no progress bar, and no head start
(these tests are about the actors: every shard goes to them, so runs split their rows the same
way; tests/cluster/test_head_start.py tests the head start); each test module fixes its shard
size (and commit period) with ``functools.partial``."""

from spinfits.cluster.precompute import PrecomputeConfig


def precompute_config(dataset, store, model_dir, *, shard_size, commit_every_s=0.0, **overrides):
    """PrecomputeConfig for ``dataset`` into ``store`` (str of it) with the body model in
    ``model_dir``; ``overrides`` set any other field."""
    base = dict(
        dataset=dataset,
        store=str(store),
        model_dir=model_dir,
        shard_size=shard_size,
        show_progress=False,
        commit_every_s=commit_every_s,
        head_start=False,
    )
    base.update(overrides)
    return PrecomputeConfig(**base)
