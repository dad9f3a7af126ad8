"""Ray's known-harmless messages, silenced or shortened at their source, in every process of a
job (``pipeline.ray_train.connect`` sets both up); any other warning or error shows as Ray
logs it. Imports nothing but ``logging`` at the top: every Ray worker process runs
``quiet_logs`` as it starts, and a failed import there would fail every worker."""

from __future__ import annotations

import logging

# Ray Train's print patch sends each line a worker prints to its logger as well, and both
# reach the driver: every epoch line shown twice. Off, a print is shown once.
QUIET_ENV = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}

SETUP_HOOK = f"{__name__}.quiet_logs"  # Ray imports it by name in each worker process
COORDINATOR_LOGGER = "ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client"


class HarmlessStartupTimeout(logging.Filter):
    """Ray Train's resource request can outwait its short time limit while the autoscaling
    coordinator actor starts (a loaded machine); Ray logs the GetTimeoutError's traceback and
    sends the request again. That one case is shown as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from ray.exceptions import GetTimeoutError

        if (record.funcName == "send_resource_request" and record.exc_info
                and isinstance(record.exc_info[1], GetTimeoutError)):
            record.msg = "Ray Train's resource request outwaited its time limit while the autoscaler started; sent again"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def quiet_logs() -> None:
    """Every worker process's setup (Ray's ``worker_process_setup_hook``)."""
    logging.getLogger(COORDINATOR_LOGGER).addFilter(HarmlessStartupTimeout())
