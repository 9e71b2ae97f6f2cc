"""Policies in and out: trained and composed policies saved, read back identical, bad files refused."""

import numpy as np
import pytest

from lever import ComposedPolicy, FileFormatError, Layout, TrainConfig, TrainedPolicy, train
from lever.cli import main
from lever.fileio import write_arrays


@pytest.fixture(scope="module")
def policy():
    return train(Layout.generate("grid8", seed=1), "path+gold*0.5",
                 TrainConfig(episodes=1200, rules="linear", vector_q=True))


def test_trained_policy_round_trip(policy, tmp_path):
    back = TrainedPolicy.load(policy.save(tmp_path / "p.npz"))
    for name in ("q", "visits", "first_visit", "next_state", "reward_model", "q_vector", "episode_returns",
                 "snapshot_episodes", "snapshot_q", "snapshot_visits"):
        assert np.array_equal(getattr(back, name), getattr(policy, name)), name
    assert (back.objective, back.config, back.layout_id) == (policy.objective, policy.config, policy.layout_id)


def test_composed_policy_round_trip(tmp_path):
    composed = ComposedPolicy(np.array([0, 3, -1, 2], dtype=np.int32), (4, 7), "max", True, "abc")
    back = ComposedPolicy.load(composed.save(tmp_path / "c.npz"))
    assert np.array_equal(back.actions, composed.actions)
    assert (back.policy_ids, back.operator, back.planned, back.layout_id) == ((4, 7), "max", True, "abc")


def test_bad_policy_files_are_named(policy, tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FileFormatError, match="junk.npz"):
        TrainedPolicy.load(tmp_path / "junk.npz")
    with pytest.raises(FileFormatError, match="no such file"):
        ComposedPolicy.load(tmp_path / "missing.npz")
    policy.save(tmp_path / "p.npz")
    with pytest.raises(FileFormatError, match="not a lever-composed-policy file"):
        ComposedPolicy.load(tmp_path / "p.npz")
    write_arrays(tmp_path / "bad.npz", "lever-composed-policy", 1, {"actions": np.array([9], dtype=np.int32)},
                 {"policy_ids": [1], "operator": "sum", "planned": False, "layout_id": "x"})
    with pytest.raises(FileFormatError, match="malformed"):
        ComposedPolicy.load(tmp_path / "bad.npz")
    write_arrays(tmp_path / "old.npz", "lever-trained-policy", 99, {}, {})
    with pytest.raises(FileFormatError, match="version 99"):
        TrainedPolicy.load(tmp_path / "old.npz")


def test_train_save_from_the_command_line(tmp_path, capsys):
    assert main(["train", "--grid", "grid8", "--episodes", "300", "--save", str(tmp_path / "t.npz")]) == 0
    assert TrainedPolicy.load(tmp_path / "t.npz").config.episodes == 300
