"""`recognize train`: fine-tune a timm ConvNeXt, Swin or EfficientNet on labelled photos.

The thesis' recipe (Grundmann 2023, sections 4.3 and 5.1.2) with its knobs: AdamW, linear
warm-up then cosine decay (or reduce-on-plateau), RandAugment, Mixup / CutMix, label smoothing,
early stopping on the validation accuracy, an EMA of the weights, AMP on GPUs, optional
class-balanced sampling. It runs on Ray Train (``TorchTrainer``): ``--workers N`` data-parallel
workers (DDP over gloo on CPUs, NCCL on GPUs) of a local Ray or of the cluster the service runs
on (``--ray-address``; deploy/training.md submits it to KubeRay as a Ray job).

Training sees exactly what the service sees: every photo is decoded and squashed to the square
input by the service's own code (``service.core.imaging.prepare_image``), kept as uint8, and
normalised by the exported graph's own arithmetic (``export.UInt8ImageClassifier``'s scale and
shift from the architecture's timm config). Augmentations run on the uint8 image; Mixup and
CutMix on the pixels before that (affine) normalisation, which is the same as after it.

Every epoch the rank-0 worker writes a checkpoint (the state to resume from and the best
weights so far) through Ray Train into ``OUT/ray/``; ``--resume`` continues the run in ``OUT``
from its latest checkpoint. At the end the best weights are exported with the exporter
(``service/modeltools/export.py``: contract, metadata, onnx checker, parity), evaluated on the
test split (``service/modeltools/evaluate.py``) and, with the split manifest, logged to MLflow:
parameters, per-epoch metrics and artifacts (a SQLite store and artifact folder in ``./mlruns``
unless ``MLFLOW_TRACKING_URI`` names a server; on a multi-node cluster it must be a server
every worker reaches).

    recognize train --data photos/ --arch tf_efficientnet_lite0 --pretrained imagenet \\
        --input-size 224 --epochs 20 --workers 2 --out runs/lite0
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("recognize.train")

ARCH_FAMILIES = ("convnext", "swin", "efficientnet", "tf_efficientnet")
IMAGENET = "imagenet"  # --pretrained imagenet: the packaged EfficientNet-Lite0 weights
RUN_NAME = "train"


class TrainError(Exception):
    """Training cannot start or finish; the message says why."""


@dataclass
class TrainConfig:
    """Everything a run is made of; logged to MLflow as its parameters."""

    data: str  # the split manifest (written by the driver before the workers start)
    out: str
    taxonomy: str | None = None
    arch: str = "tf_efficientnet_lite0"
    pretrained: str | None = IMAGENET
    input_size: int | None = None
    epochs: int = 20
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.01
    plateau_patience: int = 2
    label_smoothing: float = 0.1
    randaugment: tuple[int, int] | None = (2, 9)
    mixup: float = 0.2
    cutmix: float = 0.0
    drop_path: float = 0.1
    ema_decay: float = 0.9998
    patience: int = 5
    balanced: bool = False
    amp: str = "auto"
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpu: bool = False
    loader_workers: int = 0
    seed: int = 0
    max_train_images: int | None = None
    mlflow_uri: str = ""
    mlflow_run_id: str = ""
    arch_kwargs: dict[str, Any] = field(default_factory=dict)


# --- the worker side ------------------------------------------------------------------------


def normalization(model: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std as the exporter writes them into the model file (timm's config)."""
    import timm

    cfg = model.pretrained_cfg
    return (
        tuple(cfg.get("mean") or timm.data.IMAGENET_DEFAULT_MEAN),
        tuple(cfg.get("std") or timm.data.IMAGENET_DEFAULT_STD),
    )


def build_model(config: TrainConfig, num_classes: int) -> Any:
    """The timm model with a head for the taxonomy, initialised from the pretrained weights."""
    import timm
    import torch

    from service.modeltools.export import resolve_input_size

    torch.manual_seed(config.seed)  # the same head on every worker (DDP also broadcasts rank 0's)
    # The exporter resolves the size the same way, so it rebuilds this very network.
    _, kwargs = resolve_input_size(config.arch, config.input_size, config.arch_kwargs)
    if config.drop_path:
        kwargs.setdefault("drop_path_rate", config.drop_path)
    model = timm.create_model(config.arch, pretrained=False, num_classes=num_classes, **kwargs)
    if config.pretrained == IMAGENET:
        from service.modeltools.pretrained import ARCH, load_efficientnet_lite0

        if config.arch != ARCH:
            raise TrainError(
                f"--pretrained imagenet is the packaged EfficientNet-Lite0 checkpoint and fits "
                f"--arch {ARCH} only; for {config.arch} pass --pretrained PATH (a local timm "
                "checkpoint)"
            )
        load_efficientnet_lite0(model, with_head=False)
    elif config.pretrained:
        load_backbone(model, Path(config.pretrained), config.arch)
    # A zero head starts every class at the same logit: timm's random head put the first loss at
    # ~6 nats for 10 classes (vs ln 10 = 2.3), and fine-tuning spent its first steps undoing it.
    head = model.get_classifier()
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return model


def load_backbone(model: Any, path: Path, arch: str) -> None:
    """A local timm checkpoint into the model, all but the classifier head (which is new)."""
    from service.modeltools.export import ExportError, read_checkpoint

    try:
        weights = read_checkpoint(path)
    except ExportError as exc:
        raise TrainError(str(exc)) from exc
    head = model.pretrained_cfg.get("classifier") or "head.fc"
    expected = model.state_dict()
    kept = {
        k: v
        for k, v in weights.items()
        if not k.startswith(f"{head}.") and k in expected and v.shape == expected[k].shape
    }
    missing = [k for k in expected if k not in kept and not k.startswith(f"{head}.")]
    if missing:
        raise TrainError(
            f"checkpoint {path} does not fit {arch}: {len(missing)} tensors missing or of "
            f"another shape, e.g. {missing[:5]} (is --arch or --input-size right?)"
        )
    model.load_state_dict(kept, strict=False)


class PhotoDataset:
    """Photos as the service prepares them: uint8 [3, size, size] tensors and class indices."""

    def __init__(self, paths: list[Path], labels: list[int], *, size: int, interpolation: str,
                 augment: Any = None) -> None:
        from service.settings import Settings

        self.paths, self.labels = paths, labels
        self.size, self.interpolation = size, interpolation
        self.limits = Settings().limits()
        self.augment = augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        import torch

        from service.core.imaging import prepare_image

        array = prepare_image(
            self.paths[index].read_bytes(),
            size=self.size,
            interpolation=self.interpolation,
            limits=self.limits,
        ).array
        image = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()  # uint8 CHW
        if self.augment is not None:
            image = self.augment(image)
        return image, self.labels[index]


class ShardSampler:
    """This worker's share of an epoch: a seeded permutation (or, class-balanced, a draw with
    replacement weighted by 1 / class size), dealt round-robin to the workers; the same on
    every worker for the same epoch, so the shards never overlap."""

    def __init__(self, labels: list[int], *, rank: int, world: int, seed: int, shuffle: bool,
                 balanced: bool = False) -> None:
        self.labels, self.rank, self.world = labels, rank, world
        self.seed, self.shuffle, self.balanced = seed, shuffle, balanced
        self.epoch = 0
        # Equal shard sizes: DDP needs every worker to run the same number of steps.
        self.per_worker = len(labels) // world if shuffle else math.ceil(len(labels) / world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Any:
        import numpy as np

        n = len(self.labels)
        if not self.shuffle:
            return iter(range(self.rank, n, self.world))
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.balanced:
            counts = np.bincount(self.labels)
            weights = 1.0 / counts[self.labels]
            order = rng.choice(n, size=n, replace=True, p=weights / weights.sum())
        else:
            order = rng.permutation(n)
        return iter(order[self.rank :: self.world][: self.per_worker].tolist())

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, len(self.labels), self.world))
        return self.per_worker


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int, plateau: float) -> float:
    """Linear warm-up, then cosine to ``min_lr_ratio`` (or the plateau factor) of ``lr``."""
    warmup = config.warmup_epochs * steps_per_epoch
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "plateau":
        return config.lr * plateau
    total = max(1.0, config.epochs * steps_per_epoch - warmup)
    progress = min(1.0, (step - warmup) / total)
    floor = config.min_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_loop_per_worker(raw_config: dict[str, Any]) -> None:
    """One Ray Train worker: build, (resume,) train, validate, checkpoint, every epoch."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    from timm.utils import ModelEmaV3
    from torch.utils.data import DataLoader

    from service.core.taxonomy import load_taxonomy
    from service.modeltools.dataset import Manifest
    from service.modeltools.export import UInt8ImageClassifier, resolve_input_size

    config = TrainConfig(**raw_config)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if not config.gpu:
        torch.set_num_threads(max(1, int(config.cpus_per_worker)))
    device = ray.train.torch.get_device()
    taxonomy = load_taxonomy(config.taxonomy)
    manifest = Manifest.model_validate_json(Path(config.data).read_text(encoding="utf-8"))
    index_of = {c.id: i for i, c in enumerate(taxonomy.classes)}

    model = build_model(config, len(taxonomy.classes))
    size, _ = resolve_input_size(config.arch, config.input_size, config.arch_kwargs)
    interpolation = model.pretrained_cfg.get("interpolation") or "bicubic"
    mean, std = normalization(model)
    graph = UInt8ImageClassifier(model, mean, std)  # its scale and shift are the exported graph's
    scale, shift = graph.scale.to(device), graph.shift.to(device)

    def dataset(split: str, augment: Any = None) -> PhotoDataset:
        entries = manifest.split(split)
        if split == "train" and config.max_train_images:
            entries = entries[: config.max_train_images]
        return PhotoDataset(
            [manifest.path_of(e) for e in entries],
            [index_of[e.class_id] for e in entries],
            size=size,
            interpolation=interpolation,
            augment=augment,
        )

    augment = None
    if config.randaugment:
        from torchvision.transforms import v2

        augment = v2.RandAugment(num_ops=config.randaugment[0], magnitude=config.randaugment[1])
    train_set, val_set = dataset("train", augment), dataset("val")
    train_sampler = ShardSampler(
        train_set.labels, rank=rank, world=world, seed=config.seed, shuffle=True,
        balanced=config.balanced,
    )
    val_sampler = ShardSampler(val_set.labels, rank=rank, world=world, seed=0, shuffle=False)
    loader_options = {"num_workers": config.loader_workers, "pin_memory": config.gpu}
    train_loader = DataLoader(
        train_set, batch_size=config.batch_size, sampler=train_sampler, drop_last=True,
        **loader_options,
    )
    val_loader = DataLoader(val_set, batch_size=config.batch_size * 2, sampler=val_sampler,
                            **loader_options)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise TrainError(
            f"{len(train_sampler)} training photos per worker are fewer than one batch of "
            f"{config.batch_size}: lower --batch-size or --workers"
        )

    model = ray.train.torch.prepare_model(model)
    bare = model.module if hasattr(model, "module") else model
    ema = ModelEmaV3(bare, decay=config.ema_decay, use_warmup=True) if config.ema_decay else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    use_amp = config.amp == "on" or (config.amp == "auto" and device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    mixing = config.mixup > 0 or config.cutmix > 0
    mixup = Mixup(
        mixup_alpha=config.mixup, cutmix_alpha=config.cutmix,
        label_smoothing=config.label_smoothing, num_classes=len(taxonomy.classes),
    ) if mixing else None
    train_loss = (SoftTargetCrossEntropy() if mixing
                  else torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing))

    state = {"epoch": 0, "step": 0, "best_accuracy": -1.0, "best_epoch": -1, "stale": 0,
             "plateau": 1.0, "history": []}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            saved = torch.load(Path(folder) / "state.pt", map_location=device, weights_only=False)
        bare.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        if ema is not None and saved.get("ema") is not None:
            ema.module.load_state_dict(saved["ema"])
        state = saved["state"]
        log.info("resumed after epoch %d (best %.4f at epoch %d)", state["epoch"],
                 state["best_accuracy"], state["best_epoch"])

    mlflow_client = None
    if rank == 0 and config.mlflow_run_id:
        import mlflow

        mlflow_client = mlflow.MlflowClient(tracking_uri=config.mlflow_uri)

    def validate() -> dict[str, float]:
        judge = ema.module if ema is not None else model
        judge.eval()
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, n
        with torch.no_grad(), torch.autocast(device.type, enabled=use_amp):
            for images, labels in val_loader:
                images, labels = images.to(device), labels.to(device)
                logits = judge(images.float() * scale + shift).float()
                totals[0] += torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
                totals[1] += (logits.argmax(1) == labels).sum()
                totals[2] += len(labels)
        if world > 1:
            dist.all_reduce(totals)
        loss, correct, n = totals.tolist()
        return {"val_loss": loss / max(n, 1), "val_accuracy": correct / max(n, 1)}

    from ray.experimental.tqdm_ray import tqdm

    for epoch in range(state["epoch"], config.epochs):
        model.train()
        train_sampler.set_epoch(epoch)
        bar = None
        if rank == 0:  # one bar per epoch, shown by the driver (Ray's tqdm)
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}")
        started, loss_sum, seen = time.perf_counter(), 0.0, 0
        for images, labels in train_loader:
            lr = learning_rate(config, state["step"], steps_per_epoch, state["plateau"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, labels = images.to(device, non_blocking=True), labels.to(device)
            x = images.float()
            targets = labels
            if mixup is not None:
                x, targets = mixup(x, labels)
            with torch.autocast(device.type, enabled=use_amp):
                loss = train_loss(model(x * scale + shift), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            state["step"] += 1
            if ema is not None:
                ema.update(bare, step=state["step"])
            loss_sum += float(loss) * len(labels)
            seen += len(labels)
            if bar is not None:
                bar.update(1)
        train_seconds = time.perf_counter() - started
        if bar is not None:
            bar.close()
        metrics = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            # Every worker runs the same number of steps: the epoch's images over all of them.
            "train_images_per_s": seen * world / train_seconds,
            "train_seconds": train_seconds,
            "lr": lr,
            **validate(),
        }
        improved = metrics["val_accuracy"] > state["best_accuracy"]
        if improved:
            state.update(best_accuracy=metrics["val_accuracy"], best_epoch=epoch + 1, stale=0)
        else:
            state["stale"] += 1
            if config.schedule == "plateau" and state["stale"] % config.plateau_patience == 0:
                state["plateau"] *= 0.1
        state["epoch"] = epoch + 1
        state["history"].append(metrics)
        stop = state["stale"] >= config.patience or epoch + 1 == config.epochs
        metrics.update(best_val_accuracy=state["best_accuracy"], best_epoch=state["best_epoch"],
                       stopped_early=bool(stop and epoch + 1 < config.epochs))
        if mlflow_client is not None:
            for key in ("train_loss", "train_images_per_s", "lr", "val_loss", "val_accuracy"):
                mlflow_client.log_metric(config.mlflow_run_id, key, metrics[key], step=epoch + 1)
        with tempfile.TemporaryDirectory() as folder:
            report_checkpoint = None
            if rank == 0:
                weights = (ema.module if ema is not None else bare).state_dict()
                previous = ray.train.get_checkpoint()
                if improved:
                    torch.save(weights, Path(folder) / "best.pt")
                elif previous is not None:
                    with previous.as_directory() as before:
                        shutil.copy(Path(before) / "best.pt", Path(folder) / "best.pt")
                torch.save({
                    "model": bare.state_dict(),
                    "ema": None if ema is None else ema.module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "state": state,
                }, Path(folder) / "state.pt")
                report_checkpoint = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=report_checkpoint)
        if stop:
            break


# --- the driver side ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_ray(address: str | None, num_cpus: int | None) -> None:
    """Join the cluster at ``address``, or start a local Ray on loopback with spare ports."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    from service._raycompat import start_local_node

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a cluster this process owns
    start_local_node(num_cpus=num_cpus or os.cpu_count() or 1, metrics_port=_free_port())


def mlflow_uri() -> tuple[str, str | None]:
    """The tracking URI and, for the local default, where artifacts go: ``MLFLOW_TRACKING_URI``
    (a server: its own artifact store), else a SQLite store in ``./mlruns`` with the artifacts
    beside it (MLflow 3 refuses its old plain-folder store). Absolute: the workers log too.
    ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`` shows the runs."""
    server = os.environ.get("MLFLOW_TRACKING_URI")
    if server:
        return server, None
    folder = Path.cwd() / "mlruns"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def _fit(config: TrainConfig, address: str | None) -> Any:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": config.cpus_per_worker}
    if config.gpu:
        resources["GPU"] = 1
    start_ray(address, None)
    try:
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config=asdict(config),
            scaling_config=ScalingConfig(
                num_workers=config.workers, use_gpu=config.gpu, resources_per_worker=resources
            ),
            run_config=RunConfig(
                name=RUN_NAME,
                storage_path=str(Path(config.out, "ray").absolute()),
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                failure_config=FailureConfig(max_failures=0),
            ),
        )
        return trainer.fit()
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class TrainResult:
    out: Path
    model: Path
    best_epoch: int
    best_val_accuracy: float
    history: list[dict[str, Any]]
    test_metrics: dict[str, Any]
    mlflow_run_id: str


def train(config: TrainConfig, *, data: Path, split_seed: int = 0, resume: bool = False,
          address: str | None = None, experiment: str = "recognize",
          evaluate_split: str = "test") -> TrainResult:
    """Split (or read the manifest), fine-tune on Ray Train, export, evaluate, log to MLflow."""
    import mlflow

    from service.core.taxonomy import load_taxonomy
    from service.modeltools import evaluate as evaluation
    from service.modeltools.dataset import load_data
    from service.modeltools.export import check_arch, export_model

    out = Path(config.out).absolute()
    config.out = str(out)
    if not config.arch.startswith(ARCH_FAMILIES):
        raise TrainError(f"--arch {config.arch}: train supports {', '.join(ARCH_FAMILIES)}*")
    check_arch(config.arch)
    storage = out / "ray" / RUN_NAME
    if storage.exists() and not resume:
        raise TrainError(f"{out} already holds a training run: pass --resume, or another --out")
    if resume and not storage.exists():
        raise TrainError(f"--resume: {out} holds no training run to resume")
    taxonomy = load_taxonomy(config.taxonomy)
    manifest_path = out / "manifest.json"
    if resume:
        data = manifest_path
    manifest = load_data(data, taxonomy, seed=split_seed)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        manifest.write(manifest_path)
    print(manifest.summary(), file=sys.stderr)
    for split in ("train", "val"):
        if not manifest.split(split):
            raise TrainError(f"the {split} split is empty: more photos per class are needed")
    config.data = str(manifest_path)

    config.mlflow_uri, artifacts = mlflow_uri()
    client = mlflow.MlflowClient(tracking_uri=config.mlflow_uri)
    run_file = out / "mlflow_run.json"
    if resume and run_file.is_file():
        config.mlflow_run_id = json.loads(run_file.read_text())["run_id"]
    else:
        found = client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id if found
            else client.create_experiment(experiment, artifact_location=artifacts)
        )
        run = client.create_run(experiment_id, run_name=out.name)
        config.mlflow_run_id = run.info.run_id
        run_file.write_text(json.dumps({"run_id": config.mlflow_run_id,
                                        "tracking_uri": config.mlflow_uri}) + "\n")
        for key, value in {**asdict(config), "split_seed": split_seed,
                           "manifest_sha256": manifest.sha256}.items():
            if key not in ("mlflow_run_id", "mlflow_uri"):
                client.log_param(config.mlflow_run_id, key, json.dumps(value)[:500])
        client.log_artifact(config.mlflow_run_id, str(manifest_path))

    try:
        result = _fit(config, address)
        if result.error is not None:
            raise TrainError(f"training failed: {result.error}")
        with result.checkpoint.as_directory() as folder:
            shutil.copy(Path(folder) / "best.pt", out / "best.pt")
            import torch

            history = torch.load(Path(folder) / "state.pt", map_location="cpu",
                                 weights_only=False)["state"]["history"]
        best = max(history, key=lambda m: m["val_accuracy"])
        report = export_model(
            out / "model.onnx",
            arch=config.arch,
            checkpoint=out / "best.pt",
            input_size=config.input_size,
            arch_kwargs=config.arch_kwargs,
            name=out.name,
            version=f"{out.name}-epoch{best['epoch']}",
            taxonomy_path=config.taxonomy,
        )
        (out / "export.json").write_text(report.to_json() + "\n")
        test = evaluation.evaluate(
            out / "model.onnx", manifest, split=evaluate_split, taxonomy_path=config.taxonomy,
            out=out / f"eval-{evaluate_split}",
        )
        train_report = {
            "best_epoch": best["epoch"], "best_val_accuracy": best["val_accuracy"],
            "history": history, f"{evaluate_split}_metrics": test,
            "mlflow_run_id": config.mlflow_run_id,
        }
        (out / "train_report.json").write_text(json.dumps(train_report, indent=1) + "\n")
        for key, value in test.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                client.log_metric(config.mlflow_run_id, f"{evaluate_split}_{key}", float(value))
        for path in ("model.onnx", "export.json", "train_report.json"):
            client.log_artifact(config.mlflow_run_id, str(out / path))
        client.log_artifacts(config.mlflow_run_id, str(out / f"eval-{evaluate_split}"),
                             f"eval-{evaluate_split}")
        client.set_terminated(config.mlflow_run_id, "FINISHED")
    except BaseException:
        client.set_terminated(config.mlflow_run_id, "FAILED")
        raise
    return TrainResult(out, out / "model.onnx", best["epoch"], best["val_accuracy"], history,
                       test, config.mlflow_run_id)


def _pair(text: str) -> tuple[int, int] | None:
    if text in ("0", "off", "none"):
        return None
    try:
        n, m = (int(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected N,M (e.g. 2,9) or 0 (got {text})") from exc
    return n, m


def _pretrained(text: str) -> str | None:
    if text in ("none", ""):
        return None
    return text if text == IMAGENET else str(Path(text).absolute())


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(data="", out="")
    p = argparse.ArgumentParser(
        prog="recognize train",
        description="Fine-tune a timm ConvNeXt, Swin or EfficientNet on labelled photos with Ray "
        "Train, export it for the service, evaluate it on the test split, log it to MLflow.",
    )
    p.add_argument("--data", type=Path, required=True,
                   help="image folder DATA/<class_id>/*.jpg|png|webp, CSV path,class_id[,vin], "
                   "or a split manifest (JSON) written by an earlier run")
    p.add_argument("--out", type=Path, required=True,
                   help="run folder: manifest, checkpoints, model.onnx, evaluation")
    p.add_argument("--taxonomy", type=Path, help="taxonomy file (default: the packaged "
                   "Mercedes-Benz taxonomy, service/core/data/taxonomy.yaml)")
    p.add_argument("--arch", default=d.arch, help=f"timm architecture (default {d.arch})")
    p.add_argument("--pretrained", default=d.pretrained,
                   help="'imagenet' (the packaged EfficientNet-Lite0 ImageNet-1k weights), a "
                   "local timm checkpoint PATH, or 'none' for random weights (default imagenet)")
    p.add_argument("--input-size", type=int, help="square input in px (default: the arch's)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"per worker (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW peak lr (default {d.lr})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help=f"default {d.weight_decay}")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs,
                   help=f"linear warm-up (default {d.warmup_epochs})")
    p.add_argument("--schedule", choices=("cosine", "plateau"), default=d.schedule,
                   help="after warm-up: cosine decay, or x0.1 on a validation plateau "
                   f"(default {d.schedule})")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help=f"default {d.label_smoothing}")
    p.add_argument("--randaugment", type=_pair, default=d.randaugment, metavar="N,M",
                   help="RandAugment ops and magnitude, 0 for none (default 2,9)")
    p.add_argument("--mixup", type=float, default=d.mixup, help=f"Mixup alpha (default {d.mixup})")
    p.add_argument("--cutmix", type=float, default=d.cutmix,
                   help=f"CutMix alpha (default {d.cutmix}: crops can cut off what tells "
                   "cars apart, thesis 5.1.2)")
    p.add_argument("--drop-path", type=float, default=d.drop_path,
                   help=f"stochastic depth (default {d.drop_path})")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay,
                   help=f"EMA of the weights, 0 for none (default {d.ema_decay}, with warm-up)")
    p.add_argument("--patience", type=int, default=d.patience,
                   help=f"early stop after this many epochs without a better val accuracy "
                   f"(default {d.patience})")
    p.add_argument("--balanced", action="store_true", help="class-balanced sampling")
    p.add_argument("--amp", choices=("auto", "on", "off"), default=d.amp,
                   help="mixed precision; auto: on GPUs only (default auto)")
    p.add_argument("--workers", type=int, default=d.workers,
                   help=f"Ray Train workers (default {d.workers})")
    p.add_argument("--cpus-per-worker", type=float, default=d.cpus_per_worker,
                   help=f"CPUs (and torch threads) per worker (default {d.cpus_per_worker})")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--loader-workers", type=int, default=d.loader_workers,
                   help="DataLoader processes per worker (default 0: decode in the worker)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    p.add_argument("--split-seed", type=int, default=0, help="seed of a new split (default 0)")
    p.add_argument("--max-train-images", type=int, help="use only the first N training photos")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS"),
                   help="Ray cluster to run on, e.g. auto inside a RayJob (default: "
                   "$RAY_ADDRESS, which `ray job submit` sets, else a local Ray)")
    p.add_argument("--experiment", default="recognize",
                   help="MLflow experiment (default recognize)")
    p.add_argument("--arch-kwargs", type=json.loads, default={}, metavar="JSON",
                   help="extra timm.create_model kwargs (default {})")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    config = TrainConfig(
        data=str(args.data), out=str(args.out),
        taxonomy=None if args.taxonomy is None else str(args.taxonomy.absolute()),
        arch=args.arch,
        pretrained=_pretrained(args.pretrained),
        input_size=args.input_size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, schedule=args.schedule,
        label_smoothing=args.label_smoothing, randaugment=args.randaugment, mixup=args.mixup,
        cutmix=args.cutmix, drop_path=args.drop_path, ema_decay=args.ema_decay,
        patience=args.patience, balanced=args.balanced, amp=args.amp, workers=args.workers,
        cpus_per_worker=args.cpus_per_worker, gpu=args.gpu, loader_workers=args.loader_workers,
        seed=args.seed, max_train_images=args.max_train_images, arch_kwargs=args.arch_kwargs,
    )
    from service.modeltools.dataset import DataError
    from service.modeltools.export import ExportError

    try:
        result = train(config, data=args.data, split_seed=args.split_seed, resume=args.resume,
                       address=args.ray_address, experiment=args.experiment)
    except (TrainError, DataError, ExportError) as exc:
        print(f"recognize train: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({
        "model": str(result.model), "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy, "test": result.test_metrics,
        "mlflow_run_id": result.mlflow_run_id,
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
