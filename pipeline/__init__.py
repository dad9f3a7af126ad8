"""The DVC stages: thin `main()`s around `pixelgan`, and the only place Hydra, DVC and Ray appear."""

import os

# Ray's workers would otherwise re-create the driver's `uv run` environment inside every
# job's unpacked working directory; ours share the driver's interpreter (one machine, or
# nodes built from one image). Export RAY_ENABLE_UV_RUN_RUNTIME_ENV=1 to have it back.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
