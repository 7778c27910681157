"""End-to-end fine-tuning of the retrieval network (trunk + GeM + whitening layer).

Each epoch, after Radenović et al.:

1. draw ``tuples_per_epoch`` (query, positive) pairs;
2. **mine** hard negatives with the current network: describe a random part of the pool and
   take, for each query, the ``negatives`` most similar pool images of *other* objects (one
   per object, so a tuple's negatives are not all the same thing);
3. train on the tuples, ``batch_size`` per optimizer step, with the first-order loss (+ λ·SOS);
4. write ``epoch-N.pt`` (the network) and ``last.pt`` (network + optimizer: ``--resume``).

Batch norm statistics stay frozen (a step sees a handful of images of different sizes).
GeM's p and the whitening layer (initialised to the identity) train with the trunk.
"""

from __future__ import annotations

import io
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm import tqdm

from imsearch.errors import ConfigError
from imsearch.features.backbones import build_backbone
from imsearch.features.config import backbone_weights
from imsearch.features.extractor import resolve_device
from imsearch.features.network import FINETUNED_FORMAT, RetrievalNet
from imsearch.fsutil import write_atomic
from imsearch.train.data import Sample, TrainingData, load_image, to_tensor
from imsearch.train.losses import tuple_loss
from imsearch.train.views import SyntheticViews

log = logging.getLogger(__name__)

LAST = "last.pt"


class TrainConfig(BaseModel):
    """Everything a run depends on; stored in every checkpoint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backbone: str = "efficientnet_lite0"
    #: Starting checkpoint (required for ResNets). Unset, EfficientNet-Lite starts from the
    #: shipped model where the pooling is the one it was made for (MAC, 3 region levels), from
    #: ImageNet otherwise.
    weights: str | None = None
    cut: Literal["blocks", "head"] = "blocks"
    #: The pooling trained behind the trunk: GeM (p learnt) or MAC; ``regions`` > 0 pools
    #: R-MAC-style square regions at that many levels and sums them (what the shipped
    #: ImageNet default does), so clutter around the object weighs less.
    pooling: Literal["gem", "mac"] = "gem"
    regions: int = Field(0, ge=0, le=4)
    loss: Literal["contrastive", "triplet"] = "contrastive"
    #: None: 0.7 for contrastive, 0.1 for triplet.
    margin: float | None = None
    #: λ, the weight of the second-order similarity loss (0 = off).
    sos_weight: float = Field(0.0, ge=0.0)
    epochs: int = Field(5, ge=1)
    tuples_per_epoch: int = Field(200, ge=1)
    batch_size: int = Field(5, ge=1)
    negatives: int = Field(5, ge=1)
    pool_size: int = Field(400, ge=2)
    #: Longer side of training images (362 px as in Radenović et al.; eval runs at full size).
    image_size: int = Field(362, ge=32, le=2048)
    lr: float = Field(1e-5, gt=0.0)
    weight_decay: float = Field(1e-6, ge=0.0)
    #: EfficientNet stages frozen at the bottom of the trunk (with the stem, when ≥ 1).
    freeze_stages: int = Field(0, ge=0)
    gem_p: float = Field(3.0, gt=0.0)
    seed: int = 0
    device: str = "auto"
    #: Mixed precision (float16 autocast); only on CUDA.
    amp: bool = True


def build_network(config: TrainConfig) -> RetrievalNet:
    """The network to fine-tune: the pooling (GeM or MAC, whole map or regions), then a
    whitening layer."""
    backbone = build_backbone(config.backbone, backbone_weights(config), config.cut)
    net = RetrievalNet(backbone, config.pooling, config.gem_p, regions=config.regions)
    if net.whiten is None:
        net.whiten = nn.Linear(net.output_dim, net.output_dim, bias=True)
        with torch.no_grad():
            net.whiten.weight.copy_(torch.eye(net.output_dim))
            net.whiten.bias.zero_()
    for name, child in net.features.named_children():
        if name in ("conv_stem", "bn1", "conv1"):
            child.requires_grad_(config.freeze_stages == 0)
        if name == "blocks":
            for i, stage in enumerate(child.children()):
                stage.requires_grad_(i >= config.freeze_stages)
    return net


def train(
    config: TrainConfig,
    data: TrainingData,
    out_dir: Path,
    resume: bool = False,
    progress: bool = True,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Run (or resume) training; returns the path of ``last.pt``."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    net = build_network(config).to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    out_dir.mkdir(parents=True, exist_ok=True)
    start, history = _resume(out_dir / LAST, config, net, optimizer) if resume else (0, [])
    amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    spent: list[float] = []
    for epoch in range(start, config.epochs):
        started = time.perf_counter()
        rng = random.Random(config.seed * 1000 + epoch)  # resuming replays the same epochs
        augment = _views(data, config, rng.randrange(2**31)) if data.augment_positives else None
        pairs = [rng.choice(data.pairs) for _ in range(config.tuples_per_epoch)]
        negatives = mine(net, pairs, data.pool, config, rng, device, progress)
        losses = []
        batches = range(0, len(pairs), config.batch_size)
        for b in tqdm(batches, desc=f"epoch {epoch + 1}", unit="step", disable=not progress):
            chunk = range(b, min(b + config.batch_size, len(pairs)))
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = _tuple_batch_loss(
                    net, [pairs[i] for i in chunk], [negatives[i] for i in chunk], config,
                    augment, device,
                )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
        spent.append(time.perf_counter() - started)
        entry = {
            "epoch": epoch + 1,
            "loss": sum(losses) / len(losses),
            "seconds": spent[-1],
            "gem_p": net.gem_p,
            # the epochs of this run so far predict the rest (a resumed run counts its own)
            "eta_s": sum(spent) / len(spent) * (config.epochs - epoch - 1),
        }
        history.append(entry)
        _save(out_dir, config, net, optimizer, epoch + 1, history)
        if report is not None:
            report(entry)
    return out_dir / LAST


@torch.no_grad()
def mine(
    net: RetrievalNet,
    pairs: list[tuple[Sample, Sample]],
    pool: list[Sample],
    config: TrainConfig,
    rng: random.Random,
    device: torch.device,
    progress: bool = False,
) -> list[list[Sample]]:
    """For each pair, the hardest pool images of other objects, one per object."""
    net.eval()
    candidates = rng.sample(pool, min(config.pool_size, len(pool)))
    queries = list({p[0] for p in pairs})
    jobs = candidates + queries
    bar = tqdm(jobs, desc="mining", unit="img", disable=not progress)
    vectors = torch.cat([_describe(net, s, config.image_size, None, device) for s in bar])
    pool_vecs, query_vecs = vectors[: len(candidates)], vectors[len(candidates) :]
    row = {q: i for i, q in enumerate(queries)}
    similarity = query_vecs @ pool_vecs.T
    out = []
    for query, positive in pairs:
        chosen: list[Sample] = []
        labels = {query.label, positive.label}
        for j in similarity[row[query]].argsort(descending=True).tolist():
            if candidates[j].label not in labels:
                chosen.append(candidates[j])
                labels.add(candidates[j].label)
                if len(chosen) == config.negatives:
                    break
        if not chosen:
            raise ConfigError("the negative pool has no image of another object")
        out.append(chosen)
    return out


def _tuple_batch_loss(
    net: RetrievalNet,
    pairs: list[tuple[Sample, Sample]],
    negatives: list[list[Sample]],
    config: TrainConfig,
    augment: SyntheticViews | None,
    device: torch.device,
) -> torch.Tensor:
    _train_mode(net)
    size = config.image_size
    anchors = torch.cat([_describe(net, q, size, None, device) for q, _ in pairs])
    positives = torch.cat([_describe(net, p, size, augment, device) for _, p in pairs])
    n = min(len(negs) for negs in negatives)  # a small pool may give fewer than asked
    negs = torch.stack(
        [torch.cat([_describe(net, s, size, None, device) for s in row[:n]]) for row in negatives]
    )
    return tuple_loss(anchors, positives, negs, config.loss, config.margin, config.sos_weight)


def _describe(
    net: RetrievalNet,
    sample: Sample,
    size: int,
    augment: SyntheticViews | None,
    device: torch.device,
) -> torch.Tensor:
    img = load_image(sample, size)
    if augment is not None:
        img = augment(img)
    return net(to_tensor(img).to(device)).float()


def _views(data: TrainingData, config: TrainConfig, seed: int) -> SyntheticViews:
    """Synthetic photos whose backgrounds, neighbours and reflections are other pool images."""
    pool, size = data.pool, config.image_size
    return SyntheticViews(lambda rng: load_image(rng.choice(pool), size), seed)


def _train_mode(net: RetrievalNet) -> None:
    net.train()
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def network_state(net: RetrievalNet) -> dict[str, torch.Tensor]:
    """The checkpoint's ``state_dict``: the trunk as ``features.*``, GeM p, the whitening."""
    keep = ("features.", "pool.p", "whiten.")
    return {k: v.detach().cpu() for k, v in net.state_dict().items() if k.startswith(keep)}


def _save(
    out_dir: Path,
    config: TrainConfig,
    net: RetrievalNet,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
) -> None:
    meta = {
        "format": FINETUNED_FORMAT,
        "architecture": net.backbone_name,
        "cut": config.cut,
        "pooling": config.pooling,
        "regions": config.regions,
        "epoch": epoch,
    }
    model = {"state_dict": network_state(net), "meta": meta}
    write_atomic(out_dir / f"epoch-{epoch}.pt", _serialize(model))
    state = {
        **model,
        "train": {
            "config": config.model_dump(mode="json"),
            "optimizer": optimizer.state_dict(),
            "history": history,
        },
    }
    write_atomic(out_dir / LAST, _serialize(state))
    log.info("epoch %d written to %s", epoch, out_dir)


def _serialize(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _resume(
    path: Path, config: TrainConfig, net: RetrievalNet, optimizer: torch.optim.Optimizer
) -> tuple[int, list[dict[str, Any]]]:
    if not path.exists():
        raise ConfigError(f"nothing to resume: {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = TrainConfig(**state["train"]["config"])
    if saved.model_dump(exclude={"epochs"}) != config.model_dump(exclude={"epochs"}):
        raise ConfigError(
            f"{path} was trained with other settings; resume with the same ones "
            "(only --epochs may change)"
        )
    missing, unexpected = net.load_state_dict(state["state_dict"], strict=False)
    if unexpected or set(missing) - {"mean", "std"}:
        raise ConfigError(f"{path} does not fit the network: {missing or unexpected}")
    optimizer.load_state_dict(state["train"]["optimizer"])
    epoch = int(state["meta"]["epoch"])
    log.info("resuming after epoch %d", epoch)
    return epoch, list(state["train"]["history"])
