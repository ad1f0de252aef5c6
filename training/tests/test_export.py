"""Both models export to ONNX (opset 17, the contract's names and dynamic axes); checker passes.

This guards the exportability of the ops used, and that message passing sums with ScatterND
(whole rows) rather than the element-wise ScatterElements, 10-17x slower in ONNX Runtime
(docs/benchmarks.md).
"""

from __future__ import annotations

import io

import onnx  # Debian's python3-onnx, installed by scripts/install-training.sh
import pytest
import torch
from conftest import FE, F

from meshwatch_training.models import Detector, Forecaster

AXES = {
    "node_features": {0: "T", 1: "N"},
    "node_mask": {0: "T", 1: "N"},
    "edge_index": {1: "E"},
    "edge_weight": {0: "T", 1: "E"},
    "edge_features": {0: "T", 1: "E"},
    "window_start": {0: "T"},
}


@pytest.mark.parametrize("kind", ["detector", "forecaster"])
def test_exports_with_contract_names(kind: str) -> None:
    t, n, e = 3, 4, 5
    args = [
        torch.randn(t, n, F),
        torch.ones(t, n),
        torch.randint(0, n, (2, e)),
        torch.ones(t, e),
        torch.randn(t, e, FE),
    ]
    if kind == "detector":
        model, outputs = Detector(F, FE, dim=16), ["anomaly_score", "feature_contribution"]
    else:
        model, outputs = Forecaster(F, FE, dim=16), ["forecast", "forecast_interval"]
        args.append(1_700_000_000 + 60 * torch.arange(t))
    inputs = list(AXES)[: len(args)]
    buf = io.BytesIO()
    torch.onnx.export(
        model.eval(),
        tuple(args),
        buf,
        opset_version=17,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes={k: AXES[k] for k in inputs},
    )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == inputs
    assert [o.name for o in proto.graph.output] == outputs
    ops = [node.op_type for node in proto.graph.node]
    assert "ScatterND" in ops
    assert "ScatterElements" not in ops
    edge_index = next(i for i in proto.graph.input if i.name == "edge_index")
    assert edge_index.type.tensor_type.elem_type == onnx.TensorProto.INT64
