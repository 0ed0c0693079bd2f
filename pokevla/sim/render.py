"""Offscreen renderer selection and the opt-in fast render mode.

MuJoCo picks its OpenGL platform from `MUJOCO_GL` when robosuite is first imported, so the choice is
made here, once per process, before that import. Worker processes inherit the variable.
"""

from __future__ import annotations

import os
import subprocess
import sys

from pokevla.common.errors import SimulatorError

_PROBE = {
    "egl": "from mujoco.egl import GLContext",
    "osmesa": "from mujoco.osmesa import GLContext",
}
_PROBE_TAIL = "; c = GLContext(16, 16); c.make_current(); c.free()"


def _platform_env(backend: str) -> dict[str, str]:
    return {"MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}


def _probe(backend: str) -> str | None:
    """Tries to open a GL context in a child process; returns the error text, or None if it works."""
    env = {**os.environ, **_platform_env(backend)}
    code = "import mujoco; " + _PROBE[backend] + _PROBE_TAIL
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode == 0:
        return None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def select_renderer() -> str:
    """Chooses EGL, then OSMesa, for offscreen rendering; returns the backend name.

    A `MUJOCO_GL` set by the user is respected as it is. Must run before robosuite is imported.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        if chosen not in ("egl", "osmesa", "glx"):
            raise SimulatorError(f"MUJOCO_GL={chosen!r} is not supported; use egl or osmesa (or unset it)")
        os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
        return chosen
    if "robosuite" in sys.modules:
        raise SimulatorError("select_renderer() must run before robosuite is imported")
    errors = {}
    for backend in ("egl", "osmesa"):
        err = _probe(backend)
        if err is None:
            os.environ.update(_platform_env(backend))
            return backend
        errors[backend] = err
    raise SimulatorError(
        "no offscreen renderer works (egl: {egl}; osmesa: {osmesa}); install Mesa with "
        "`bash scripts/install_system_deps.sh` (libegl1 libgl1-mesa-dri libosmesa6)".format(**errors)
    )


# Fast render: no 4x multi-sample anti-aliasing and no mirror reflections (the table and floor are
# reflective, so reflections draw the scene twice). About 2x faster on llvmpipe, but the images shift
# slightly, so the mode is process-wide, opt-in and recorded by every caller.
_fast_render: bool | None = None


def set_render_mode(fast: bool) -> None:
    """Sets the process-wide render mode; mixing modes in one process is an error, not a surprise."""
    global _fast_render
    if _fast_render is not None and _fast_render != fast:
        raise SimulatorError("fast and stock render modes cannot be mixed in one process; use one --fast-render setting")
    if _fast_render is None:
        _fast_render = fast
        if fast:
            _install_fast_render_patch()


def render_mode() -> str:
    return "fast" if _fast_render else "stock"


def _install_fast_render_patch() -> None:
    import mujoco
    from robosuite.utils.binding_utils import MjRenderContext

    original = MjRenderContext._set_mujoco_context_and_buffers

    def fast_context(self):
        self.model.vis.quality.offsamples = 0
        original(self)
        self.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    MjRenderContext._set_mujoco_context_and_buffers = fast_context
