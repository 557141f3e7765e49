import pytest

from tsm_keras.data.synthetic import ensure_default_dataset

# A tiny run: every test in this folder trains at most a few steps of this size.
TINY = ["--backbone", "mobilenet_v2", "--width", "0.35", "--input-size", "32", "--segments", "4",
        "--batch-size", "4", "--weights", "none", "--lr", "0.05", "--warmup-epochs", "0"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The built-in data set, 10 classes x (3 train + 1 val) clips of 8 frames at 40 px."""
    root = tmp_path_factory.mktemp("data") / "tiny_shapes"
    return ensure_default_dataset(root, train_per_class=3, val_per_class=1, frames=8, size=40, progress=False)
