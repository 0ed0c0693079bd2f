"""Simulation layer: one LIBERO environment wrapper used by data generation, evaluation and
perturbations. Importing this package does not import the simulator; `make_env` does."""

from pokevla.sim.suites import SUITES, SuiteSpec, TaskInfo, get_suite, list_tasks, parse_task_ids

__all__ = ["SUITES", "SuiteSpec", "TaskInfo", "get_suite", "list_tasks", "parse_task_ids", "EnvConfig", "LiberoEnv"]


def __getattr__(name):
    # The env module imports robosuite (seconds, and it fixes the GL platform), so load it lazily.
    if name in ("EnvConfig", "LiberoEnv"):
        from pokevla.sim import env

        return getattr(env, name)
    raise AttributeError(name)
