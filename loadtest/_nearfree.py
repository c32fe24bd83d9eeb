"""A near-free model with a served model's contract, so a benchmark measures the stack, not the
model (issue 13: "with the model's cost taken away").

It takes the served model's input (uint8 ``[N, S, S, 3]``), its ``logits`` width and its
``recognize`` metadata entry word for word (classes, input size, preprocessing), so every server
treats it as that model: same decode and resize, same verdict, same response. Its graph is a
mean over the pixels and one [3, C] matrix: microseconds per image, where ConvNeXt-T@224 costs
~100 ms on a core. Its predictions are as arbitrary as the demo model's; only its cost differs.

Built with ``onnx.helper`` (the onnx package of the modeltools extra; a benchmark tool, never in
the serving path). Operators: https://onnx.ai/onnx/operators/ (opset 17).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from service.core.modelfile import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, parse_metadata

OPSET = 17


def build_near_free(served: Path, out: Path, *, seed: int = 0) -> Path:
    """Write the near-free twin of ``served`` to ``out`` and return ``out``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    source = onnx.load(str(served), load_external_data=False)
    props = {p.key: p.value for p in source.metadata_props}
    metadata = parse_metadata(props, source=str(served))  # a classifier, not a gate
    size, classes = metadata.input_size, len(metadata.classes)
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((3, classes)).astype(np.float32) / 255.0
    bias = rng.standard_normal(classes).astype(np.float32)
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["pixels"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["pixels"], ["mean_rgb"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["mean_rgb", "weights"], ["scores"]),
        helper.make_node("Add", ["scores", "bias"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "near_free",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", classes])],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # what onnxruntime >= 1.15 reads for opset 17
    # The served model's entry word for word, so the servers cannot tell the two apart; the
    # name says what it is in /readyz and the logs.
    entry = json.loads(props[METADATA_KEY])
    entry["name"] = f"near-free twin of {metadata.name}"
    helper.set_model_props(model, {METADATA_KEY: json.dumps(entry)})
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out
