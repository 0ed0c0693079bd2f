"""`ScriptedExpert`: plans from the task's BDDL goal and executes the plan one action at a time."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from pokevla.expert import articulation, placement, skills
from pokevla.expert.motion import Arm, Skill
from pokevla.expert.planner import Step, plan
from pokevla.expert.scene import Scene
from pokevla.sim.env import LiberoEnv

PLAN_ATTEMPTS = 3  # the whole plan is re-run (skipping satisfied steps) when the goal is still unmet


class ScriptedExpert:
    """Privileged-state expert for one LIBERO env. Call `reset()` after every `env.reset()`."""

    def __init__(self, env: LiberoEnv):
        self.env = env
        self.scene = Scene(env)  # rebuilt at every reset: LIBERO's hard reset replaces the MuJoCo model
        self.steps: list[Step] = []
        self._arm: Arm | None = None
        self._actions: Iterator[np.ndarray] | None = None

    def reset(self) -> None:
        self.scene = scene = Scene(self.env)
        goal = scene.raw.parsed_problem["goal_state"]
        drawers = {s for s in scene.raw.object_sites_dict if scene.site_joints(s)}
        self.steps = plan(goal, drawers)
        self._arm = Arm(scene)
        self._actions = self._run()

    @property
    def precise(self) -> bool:
        """The last action was part of a fine approach or a gripper change (see `Arm.precise`)."""
        return self._arm is not None and self._arm.precise

    def act(self, obs: dict) -> np.ndarray:
        if self._actions is None:
            raise RuntimeError("call ScriptedExpert.reset() after env.reset()")
        return next(self._actions)

    # ------------------------------------------------------------------ plan
    def _run(self) -> Iterator[np.ndarray]:
        arm = self._arm
        for _ in range(PLAN_ATTEMPTS):
            for step in self.steps:
                if not self._holds(step):
                    yield from self._execute(step)
            if self.env.check_success():
                break
        while True:  # plan exhausted: hold still until the episode ends
            yield arm.action(self.scene.eef_pos)

    def _holds(self, step: Step) -> bool:
        pred = [step.kind, step.obj] if step.target is None else [step.relation, step.obj, step.target]
        return bool(self.scene.raw._eval_predicate(pred))

    def _execute(self, step: Step) -> Skill:
        arm = self._arm
        if step.kind == "move":
            return self._pick_and_place(step)
        if step.kind in ("open", "close"):
            contents = tuple(s.obj for s in self.steps if s.kind == "move" and s.target == step.obj)
            return articulation.slide_or_swing(arm, step.obj, opening=step.kind == "open", contents=contents)
        return articulation.turn_knob(arm, step.obj, on=step.kind == "turnon")

    def _pick_and_place(self, step: Step) -> Skill:
        arm, scene = self._arm, self.scene
        # into a drawer the hand passes under the drawer above: keep its width along the drawer front
        joints = scene.site_joints(step.target) if scene.is_site(step.target) else []
        across = scene.joint_axis(joints[0]) if joints else None
        if not (yield from skills.pick(arm, step.obj, across)):
            return False
        shared = any(s.kind == "move" and s.target == step.target for s in self.steps[self.steps.index(step) + 1 :])
        target = placement.target_for(self.scene, step.obj, step.target, step.relation, shared)
        return (yield from skills.place(arm, step.obj, target))
