"""The naive peer of the benchmark: what a team writes first.

FastAPI + uvicorn + onnxruntime in one process, one inference at a time: a synchronous endpoint
(FastAPI runs it in its thread pool, so decoding overlaps) and a lock around ``session.run`` (one
batch-of-one inference at a time). The work per request is the service's: the same multipart
form, ``service.core.imaging.prepare_image``, ``service.core.vin.decode_vin`` and
``service.core.verdict.decide`` on the same model with the same session options
(``service.inference.predictor``).

    python -m loadtest.naive_server --port 8100 [--model PATH]

``GET /readyz`` answers 200 once the model is loaded and has run once.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Annotated, Any

import numpy as np
import uvicorn
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from service.core.errors import RecognizeError
from service.core.vin import decode_vin
from service.inference.predictor import Predictor
from service.settings import Settings


def build_app(model_path: str, intra_op_threads: int = 0) -> FastAPI:
    model = Predictor.open(model_path, intra_op_threads)
    model.warm_up([1])
    one_at_a_time = threading.Lock()
    app = FastAPI(title="naive Recognize peer")

    @app.exception_handler(RecognizeError)
    async def _error(_: Request, exc: RecognizeError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=exc.to_dict())

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/recognize")
    def recognize(
        image: Annotated[UploadFile, File()], vin: Annotated[str, Form()]
    ) -> dict[str, Any]:
        data = image.file.read()
        decoded_vin = decode_vin(vin)
        array = model.prepare(data)
        with one_at_a_time:
            logits = model.run(array[np.newaxis])
        decision = model.decide(logits[0], decoded_vin)
        return {
            "verdict": decision.verdict.value,
            "reasons": decision.reasons,
            "label": decision.top.label,
            "confidence": decision.top.probability,
            "parent_probability": decision.parent_probability,
            "expected_parent": decoded_vin.expected_parent,
            "batch_size": 1,
        }

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument(
        "--model", default=str(Settings().model_path), help="ONNX model (default: the settings')"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="onnxruntime intra-op threads (default 0 = cores)"
    )
    args = parser.parse_args(argv)
    app = build_app(args.model, args.threads)
    # One worker process, as a first deployment has it; uvicorn handles SIGTERM itself.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
