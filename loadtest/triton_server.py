"""The Triton peer of the benchmark: what teams deploy instead, through PyTriton.

NVIDIA Triton Inference Server (inside the ``nvidia-pytriton`` wheel) with its dynamic batcher in
front of a Python function that does the service's work per batch: decode and resize each photo
(``service.core.imaging.prepare_image``, in a small thread pool: Pillow releases the GIL),
decode each VIN (``service.core.vin.decode_vin``), one onnxruntime call for the whole batch with
the service's session options, and the verdict (``service.core.verdict.decide``), all through
``service.inference.predictor``. The client sends the JPEG bytes and the VIN as KServe v2 BYTES
tensors (binary extension); the server does everything else, as the service does.

It runs with the Python of ``.venv-triton`` (``scripts/triton_venv.sh``: PyTriton pins numpy<2),
the repository on PYTHONPATH, and LD_LIBRARY_PATH set to that Python's LIBDIR (otherwise Triton's
Python backend loads the system libpython and fails). ``loadtest/bench.py`` sets all three::

    LD_LIBRARY_PATH=$(.venv-triton/bin/python -c 'import sysconfig; \
print(sysconfig.get_config_var("LIBDIR"))') PYTHONPATH=. \
    .venv-triton/bin/python -m loadtest.triton_server --port 8200

Inputs ``image`` and ``vin`` (BYTES, [1]); outputs ``verdict`` (BYTES), ``parent_probability``
(FP32) and ``batch_size`` (INT32: how many requests shared the batch). Ready when
``GET /v2/models/recognize/ready`` answers 200. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from service.core.errors import RecognizeError
from service.core.vin import decode_vin
from service.inference.predictor import Predictor
from service.settings import Settings

MODEL_NAME = "recognize"


def make_infer(model_path: str, intra_op_threads: int, decode_threads: int) -> Any:
    settings = Settings()
    model = Predictor.open(model_path, intra_op_threads, settings)
    decoder = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode")

    @batch
    def infer(image: np.ndarray, vin: np.ndarray) -> dict[str, np.ndarray]:
        # image, vin: object arrays [N, 1] of bytes, one row per request in this batch.
        count = len(image)
        arrays = list(decoder.map(model.prepare, (bytes(row[0]) for row in image)))
        logits = model.run(np.stack(arrays))
        verdicts, parent_probabilities = [], []
        for i in range(count):
            try:
                decision = model.decide(logits[i], decode_vin(bytes(vin[i][0]).decode()))
                verdicts.append(decision.verdict.value)
                parent_probabilities.append(decision.parent_probability)
            except RecognizeError as exc:
                verdicts.append(exc.code)
                parent_probabilities.append(0.0)
        return {
            "verdict": np.array([[v.encode()] for v in verdicts], dtype=np.object_),
            "parent_probability": np.array(parent_probabilities, dtype=np.float32)[:, None],
            "batch_size": np.full((count, 1), count, dtype=np.int32),
        }

    # Allocate every batch shape's memory before ready, as the service's warm-up does.
    model.warm_up(range(1, settings.max_batch_size + 1))
    return infer


def _stop(signum: int, _frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="HTTP port on 127.0.0.1")
    parser.add_argument("--model", default=str(settings.model_path), help="ONNX model")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = cores)")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=settings.max_batch_size,
        help=f"dynamic batcher's largest batch (default RECOGNIZE_MAX_BATCH_SIZE, "
        f"{settings.max_batch_size})",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=settings.batch_wait_timeout_s * 1000,
        help="max queue delay of the dynamic batcher (default RECOGNIZE_BATCH_WAIT_TIMEOUT_S)",
    )
    parser.add_argument("--decode-threads", type=int, default=2, help="photo decoding threads")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _stop)
    infer = make_infer(args.model, args.threads, args.decode_threads)
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.port,
        allow_grpc=False,
        allow_metrics=False,
        exit_timeout_secs=5,
        log_verbose=0,
    )
    with tempfile.TemporaryDirectory(prefix="pytriton-") as scratch:
        try:
            # PyTriton creates the workspace folder itself (and refuses an existing one).
            with Triton(config=config, workspace=f"{scratch}/workspace") as triton:
                triton.bind(
                    model_name=MODEL_NAME,
                    infer_func=infer,
                    inputs=[
                        Tensor(name="image", dtype=bytes, shape=(1,)),
                        Tensor(name="vin", dtype=bytes, shape=(1,)),
                    ],
                    outputs=[
                        Tensor(name="verdict", dtype=bytes, shape=(1,)),
                        Tensor(name="parent_probability", dtype=np.float32, shape=(1,)),
                        Tensor(name="batch_size", dtype=np.int32, shape=(1,)),
                    ],
                    config=ModelConfig(
                        max_batch_size=args.max_batch_size,
                        batcher=DynamicBatcher(
                            max_queue_delay_microseconds=int(args.batch_wait_ms * 1000)
                        ),
                    ),
                    strict=True,
                )
                triton.serve()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
