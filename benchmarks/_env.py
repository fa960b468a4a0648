"""What every benchmark JSON records about the machine it ran on."""

from __future__ import annotations

import os
import platform

from benchmarks._machine import cpu_model


def device_info() -> dict:
    import torch

    from ehrforge.core.backends.transformers_backend import cpu_supports_bf16

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_native_bf16": cpu_supports_bf16(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info
