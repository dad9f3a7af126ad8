"""Ray's known-harmless start-up timeout is one line in the log; anything else keeps its traceback."""

from __future__ import annotations

import importlib
import logging
import sys

from ray.exceptions import GetTimeoutError

from pipeline.quiet import COORDINATOR_LOGGER, SETUP_HOOK, HarmlessStartupTimeout


def logged(error: Exception, function: str = "send_resource_request") -> logging.LogRecord:
    try:
        raise error
    except Exception:
        raised = sys.exc_info()
    return logging.LogRecord(COORDINATOR_LOGGER, logging.WARNING, __file__, 1, "Failed to send resource request for %s.",
                             ("run",), raised, func=function)


def test_the_start_up_timeout_is_one_line_and_every_other_failure_keeps_its_traceback() -> None:
    timeout = logged(GetTimeoutError("5 s"))
    assert HarmlessStartupTimeout().filter(timeout)
    assert timeout.exc_info is None and "sent again" in timeout.getMessage()
    for other in (logged(RuntimeError("actor died")), logged(GetTimeoutError("5 s"), "cancel_resource_request")):
        assert HarmlessStartupTimeout().filter(other)
        assert other.exc_info is not None and other.getMessage() == "Failed to send resource request for run."


def test_rays_setup_hook_names_a_function_a_worker_can_import() -> None:
    module, name = SETUP_HOOK.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))
