"""Which execution providers a node asks ONNX Runtime for, given what its build offers."""

from __future__ import annotations

import pytest

from edge.runtime.engine import DEFAULT_PROVIDER_ORDER, choose_providers

TRT, CUDA, CPU = DEFAULT_PROVIDER_ORDER
GPU_BUILD = (TRT, CUDA, CPU)
CPU_BUILD = ("AzureExecutionProvider", CPU)


@pytest.mark.parametrize(
    ("requested", "offered", "expected"),
    [
        (None, GPU_BUILD, [TRT, CUDA, CPU]),
        (None, CPU_BUILD, [CPU]),
        # TensorRT alone would fall back to the CPU when libnvinfer is missing: CUDA goes next.
        ((TRT,), GPU_BUILD, [TRT, CUDA, CPU]),
        ((TRT, CPU), GPU_BUILD, [TRT, CUDA, CPU]),
        ((CUDA,), GPU_BUILD, [CUDA, CPU]),
        ((CPU,), GPU_BUILD, [CPU]),
        # A GPU config on a CPU-only box still starts.
        ((TRT,), CPU_BUILD, [CPU]),
        ((CUDA, CPU), CPU_BUILD, [CPU]),
    ],
)
def test_provider_order(
    requested: tuple[str, ...] | None, offered: tuple[str, ...], expected: list[str]
) -> None:
    assert choose_providers(requested, offered) == expected
