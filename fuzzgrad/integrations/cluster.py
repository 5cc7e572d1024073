"""``fuzzgrad fuzz`` on more than one worker's worth of hardware: the options that pin local
workers to GPUs (``--devices``, ``--gpus-per-task``) and run on a Ray cluster (``--executor ray``,
``--ray-address``, ``--cpus-per-task``), and the executor they ask for."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_cluster_options(fuzz: argparse.ArgumentParser, nightly) -> None:
    """Add the device options to the ``nightly`` group of ``fuzz``, and a cluster group."""
    nightly.add_argument(
        "--devices",
        default=None,
        metavar="auto|LIST",
        help="pin local workers to GPUs: one worker per visible GPU (auto), or per GPU listed "
        "(0,2), through CUDA_VISIBLE_DEVICES (see --gpus-per-task)",
    )
    nightly.add_argument(
        "--gpus-per-task",
        default=None,
        metavar="G",
        help="GPUs per worker or Ray task for targets that can use one: a fraction shares one "
        "(0.5: two per GPU), a whole number gives several (default: 1)",
    )
    cluster = fuzz.add_argument_group("cluster runs")
    cluster.add_argument(
        "--executor",
        choices=("process", "ray"),
        default="process",
        help="process: worker processes on this machine (default); ray: tasks on a Ray cluster, "
        'a target fuzzed by many workers at once (pip install -e ".[ray]")',
    )
    cluster.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="the Ray cluster to use (host:port, auto, ray://...; default: start a local one "
        "for the run)",
    )
    cluster.add_argument(
        "--cpus-per-task",
        default=None,
        metavar="C",
        help="CPUs each Ray task asks for (default: 1; fractions share one)",
    )


def executor_problem(args, options: dict[str, Any]) -> str | None:
    """Why the executor asked for cannot run (Ray not installed; ``--no-isolate``)."""
    if options["executor"] != "ray":
        return None
    if not args.isolate:
        return "--no-isolate goes with the process executor: Ray tasks always fuzz in workers"
    from fuzzgrad.nightly.ray_executor import ray_problem

    return ray_problem()


def bad_database(database: str | None) -> str | None:
    """Why a ``--database`` spec is malformed (a github-artifact:// URL without its repo, a
    Redis URL the client cannot read: said without its password)."""
    from fuzzgrad.nightly.database import GITHUB, github_artifact, is_shared, redis_problem

    if database and is_shared(database):
        return redis_problem(database)
    if database and database.startswith(GITHUB):
        try:
            github_artifact(database)
        except ValueError as exc:
            return str(exc)
    return None


def executor(plan, options: dict[str, Any], workers: list) -> Callable[[Any], None]:
    """What fuzzes ``plan`` given a recorder: the local pool (its ``workers``), or the Ray
    cluster, connected to now (one out of reach is a `FuzzgradError` before the run starts)."""
    if options["executor"] != "ray":
        from fuzzgrad.nightly.pool import run

        return lambda recorder: run(plan, recorder, workers)
    from fuzzgrad.nightly import ray_executor

    cluster = ray_executor.Options(
        address=options["ray_address"],
        cpus_per_task=options["cpus_per_task"],
        gpus_per_task=options["gpus_per_task"],
        jobs=plan.jobs if options["jobs_given"] else None,
    )
    owned = ray_executor.connect(cluster)
    return lambda recorder: ray_executor.run(plan, recorder, cluster, owned=owned)
