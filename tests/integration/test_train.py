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
