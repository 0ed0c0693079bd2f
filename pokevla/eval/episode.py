"""One policy episode under the published protocol: the loop every evaluation runs."""

from __future__ import annotations

import hashlib
import time
from typing import Callable

import numpy as np


def play_episode(env, policy, max_steps: int, *, on_frame: Callable[[dict], None] | None = None, **reset_kwargs) -> dict:
    """Resets `env` (`trial=k` or `seed=s`), runs `policy` until success or `max_steps`.

    `on_frame(obs)` sees every observation, the first and the last included (videos).
    Returns {"success", "steps", "policy_seconds", "actions_sha1"}: the digest of the executed
    actions (float32) tells whether two runs of the same policy acted identically.
    """
    obs = env.reset(**reset_kwargs)
    policy.reset(env)
    success, policy_s, digest = False, 0.0, hashlib.sha1()
    for _ in range(max_steps):
        if on_frame is not None:
            on_frame(obs)
        t0 = time.perf_counter()
        action = policy.act(obs)
        policy_s += time.perf_counter() - t0
        digest.update(np.asarray(action, dtype=np.float32).tobytes())
        obs, success = env.step(action)
        if success:
            break
    if on_frame is not None:
        on_frame(obs)
    return {"success": success, "steps": env.num_steps, "policy_seconds": round(policy_s, 2),
            "actions_sha1": digest.hexdigest()}
