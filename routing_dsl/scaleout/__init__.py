"""Scale-out: one run split into partitions that cannot conflict, routed by an executor, and
merged into exactly the result one process gives.

Product stores that share a real facility share its stock and its daily order count, so they
route together: partitions are the connected components of the store–facility graph. A
partition's work is a pure function of (plan, its part of the snapshot) with no I/O; parts
travel to workers pickled, their stock as numpy columns and their orders as records, read
and validated once, in the process that loaded the snapshot. A run that is one partition
routes in that process (a pool would only add the trip), and says so. The merge puts every
group's allocations, unfillable items and batch back in plan order, and the inventory,
facility counts and warnings in the order a single run writes them, so the result is
byte-identical whatever the executor, the number of workers or the order they finish in.
"""

from .partition import (EXECUTORS, ExecutorUnavailable, Partition, connected_stores, merge,
                        partitions, route_partitioned)

__all__ = ["EXECUTORS", "ExecutorUnavailable", "Partition", "connected_stores", "merge",
           "partitions", "route_partitioned"]
