"""The Ray connection every Ray job of the project uses: attach to a cluster, or start an embedded Ray that
keeps every port on loopback.

Ray 2.60 turns a node address of 127.0.0.1 into the machine's own address unless cluster mode is off
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when ray is first imported): an embedded Ray sets it for itself
and its workers, even when ray was imported before, so nothing it opens listens beyond 127.0.0.1.
"""

from __future__ import annotations

import logging
import os

from runtime.faults import fault_env

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"


def ray_target(address: str | None) -> str | None:
    """The cluster to attach to: `address`, else RAY_ADDRESS; None means an embedded local Ray."""
    return address or os.environ.get("RAY_ADDRESS") or None


def connect_ray(address: str | None = None, *, num_cpus: int | None = None, runtime_env: dict | None = None,
                log_to_driver: bool = True) -> bool:
    """Attach to `address` / RAY_ADDRESS, or start an embedded Ray on loopback (with `num_cpus`, null: all).

    Does nothing when Ray is already initialised in this process. Returns True when this call started Ray.
    """
    target = ray_target(address)
    if not target:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    import ray

    if not target and os.environ[LOOPBACK_ENV] == "0":
        # Ray reads the variable once, when it is first imported: a process that imported ray before this call
        # (a captioning backend, say) would otherwise still rewrite 127.0.0.1 to the machine's address.
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    if ray.is_initialized():
        return False
    faults = fault_env()
    if faults:  # the test-only fault hook reaches the workers (on a cluster they do not inherit this process's env)
        runtime_env = {**(runtime_env or {}), "env_vars": {**(runtime_env or {}).get("env_vars", {}), **faults}}
    if target:
        ray.init(address=target, runtime_env=runtime_env, log_to_driver=log_to_driver,
                 logging_level=logging.WARNING)
    else:  # "local": never attach to whatever /tmp/ray/ray_current_cluster names (a stale head, say).
        # Ray's processes inherit LOOPBACK_ENV from this one; a job-level runtime_env only for what was asked
        # (one would make every worker wait for the runtime-env agent).
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address=LOOPBACK,
                 runtime_env=runtime_env, log_to_driver=log_to_driver, logging_level=logging.WARNING)
    return True
