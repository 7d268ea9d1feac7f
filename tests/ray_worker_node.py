"""Join one Ray worker node to a head on 127.0.0.1 and keep it up until killed: the second node of the fault
tests. `ray start --address` refuses to join a node while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the setting that
keeps Ray on loopback), and with it 1 it rewrites 127.0.0.1 to the machine's address; this starts the node the
way `ray.cluster_utils.Cluster.add_node` does, with every address on loopback.

    python tests/ray_worker_node.py HEAD_ADDRESS NUM_CPUS PORT PORT PORT PORT PORT PORT

The six ports (free ones, chosen by the caller) are the node's: node manager, object manager, dashboard agent
(listen and gRPC), metrics export and runtime-env agent. Left to Ray, the dashboard agent takes 52365, and two test
runs on one machine would send each other's `ray job submit` jobs to the wrong cluster.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


def main() -> None:
    import ray._private.node
    import ray._private.parameter

    address, cpus = sys.argv[1], int(sys.argv[2])
    node_manager, object_manager, agent_listen, agent_grpc, metrics, runtime_env = (int(p) for p in sys.argv[3:9])
    params = ray._private.parameter.RayParams(
        gcs_address=address, node_ip_address="127.0.0.1", num_cpus=cpus, num_gpus=0, min_worker_port=0,
        max_worker_port=0, node_manager_port=node_manager, object_manager_port=object_manager,
        dashboard_agent_listen_port=agent_listen, metrics_agent_port=agent_grpc, metrics_export_port=metrics,
        runtime_env_agent_port=runtime_env, object_store_memory=200 * 2**20, include_log_monitor=False)
    ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    print(f"node up: {address} ({cpus} CPU)", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
