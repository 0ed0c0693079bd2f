"""Pure perturbation functions: image corruptions, camera orbit math, language rewrites, BDDL edits."""

import numpy as np
import pytest

from pokevla.common.errors import ConfigError
from pokevla.sim.perturb import DIMENSIONS, CameraSpec, NoiseSpec, RobotSpec, reset_kwargs, spec_from_dict
from pokevla.sim.perturb import camera, language, layout, noise

BASE_POS = np.array([0.6586, 0.0, 1.6104])
BASE_QUAT = np.array([0.638, 0.305, 0.305, 0.638]) / np.linalg.norm([0.638, 0.305, 0.305, 0.638])


def _image(h=64, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x // 4 + y // 4) % 2 * 255], -1).astype(np.uint8)  # ramps and a checker


@pytest.mark.parametrize("kind", sorted(noise.CORRUPTIONS))
@pytest.mark.parametrize("shape", [(64, 64), (300, 200)])  # the original's fog broke above 256 px
def test_corruptions_keep_shape_and_dtype_and_are_seeded(kind, shape):
    img = _image(*shape)
    a = noise.corrupt(img, kind, 5, np.random.default_rng(1))
    b = noise.corrupt(img, kind, 5, np.random.default_rng(1))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - img).mean() > 0.5


@pytest.mark.parametrize("kind", sorted(noise.CORRUPTIONS))
def test_severity_10_corrupts_more_than_severity_1(kind):
    y, x = np.mgrid[0:128, 0:128]
    img = np.repeat((((x // 4 + y // 4) % 2) * 200 + 20).astype(np.uint8)[..., None], 3, -1)  # fine checkerboard
    diff = [np.abs(noise.corrupt(img, kind, s, np.random.default_rng(0)).astype(int) - img).mean() for s in (1, 10)]
    assert diff[1] > diff[0]


def _photo(size=224):
    """A smooth image with edges, at the official 224 px (the corruptions' pixel sizes are given there)."""
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(7 * x) * 0.5 + 0.5, (x + y) / 2, ((x > 0.3) & (y < 0.6)) * 0.8 + 0.1], -1)
    return (img * 255).astype(np.uint8)


@pytest.mark.parametrize("severity", [1, 4, 10])
def test_gaussian_blur_is_the_official_one(severity):
    """The official: skimage.filters.gaussian(x / 255, sigma=severity, channel_axis=-1), which is
    scipy's gaussian_filter with mode 'nearest' and truncate 4, clipped and cast to uint8."""
    from scipy.ndimage import gaussian_filter

    img = _photo()
    official = np.clip(gaussian_filter(img / 255.0, sigma=(severity, severity, 0), mode="nearest", truncate=4.0), 0, 1) * 255
    ours = noise.corrupt(img, "gaussian_blur", severity, np.random.default_rng(0))
    assert np.abs(ours.astype(int) - official.astype(np.uint8)).max() <= 1


@pytest.mark.parametrize("severity", [1, 6, 10])
def test_zoom_blur_is_the_official_one(severity):
    """The official: the mean of the image and its centre zooms over np.arange(1, stop, step)
    (factor 1 included), each zoom scipy.ndimage.zoom of order 1 of the centre crop."""
    from scipy.ndimage import zoom

    img = _photo()
    x = img.astype(np.float32) / 255
    stop, step = noise.ZOOM_BLUR[severity - 1]
    out = np.zeros_like(x)
    for factor in np.arange(1, stop, step):
        ch = int(np.ceil(224 / factor))
        top = (224 - ch) // 2
        zoomed = zoom(x[top:top + ch, top:top + ch], (factor, factor, 1), order=1)
        trim = (zoomed.shape[0] - 224) // 2
        out += zoomed[trim:trim + 224, trim:trim + 224]
    official = np.clip((x + out) / (len(np.arange(1, stop, step)) + 1), 0, 1) * 255
    ours = noise.corrupt(img, "zoom_blur", severity, np.random.default_rng(0))
    assert np.abs(ours.astype(float) - official).mean() < 1.5  # linear resampling of OpenCV and SciPy differ slightly


def test_official_noise_tables_have_ten_severities():
    for table in (noise.MOTION_BLUR, noise.GAUSSIAN_BLUR, noise.ZOOM_BLUR, noise.FOG, noise.GLASS_BLUR):
        assert len(table) == 10
    assert set(noise.CORRUPTIONS) == set(NoiseSpec.kinds)


def test_noise_spec_checks_severity():
    with pytest.raises(ConfigError, match="severity"):
        NoiseSpec(1, "fog", severity=11)


def test_camera_identity_and_orbit_geometry():
    pos, quat = camera.camera_pose(CameraSpec(1, "orbit"), BASE_POS, BASE_QUAT)
    np.testing.assert_allclose(pos, BASE_POS, atol=1e-12)
    np.testing.assert_allclose(quat, BASE_QUAT, atol=1e-12)
    pos, _ = camera.camera_pose(CameraSpec(3, "orbit", azimuth_deg=40), BASE_POS, BASE_QUAT)
    rel0, rel = BASE_POS - camera.PIVOT, pos - camera.PIVOT
    assert np.isclose(np.linalg.norm(rel), np.linalg.norm(rel0)) and np.isclose(pos[2], BASE_POS[2])
    assert np.isclose(np.degrees(np.arctan2(rel[1], rel[0]) - np.arctan2(rel0[1], rel0[0])), 40)
    up, _ = camera.camera_pose(CameraSpec(1, "orbit", elevation_deg=15), BASE_POS, BASE_QUAT)
    assert up[2] > BASE_POS[2] and np.isclose(np.linalg.norm(up - camera.PIVOT), np.linalg.norm(rel0))


def test_camera_orbit_keeps_the_pivot_in_view():
    """Orbiting rotates the view with the position, so the pivot stays at the same spot of the image."""
    def view_dir(q):  # MuJoCo cameras look along their -z axis
        return -camera._rotate(q, np.array([0.0, 0.0, 1.0]))

    d0 = view_dir(BASE_QUAT)
    angle0 = np.arccos(np.dot(d0, (camera.PIVOT - BASE_POS) / np.linalg.norm(camera.PIVOT - BASE_POS)))
    pos, quat = camera.camera_pose(CameraSpec(5, "orbit", azimuth_deg=-70, elevation_deg=15), BASE_POS, BASE_QUAT)
    to_pivot = (camera.PIVOT - pos) / np.linalg.norm(camera.PIVOT - pos)
    assert np.isclose(np.arccos(np.dot(view_dir(quat), to_pivot)), angle0, atol=1e-9)


def test_camera_distance_and_orientation():
    pos, quat = camera.camera_pose(CameraSpec(5, "distance", distance_scale=2.0), BASE_POS, BASE_QUAT)
    np.testing.assert_allclose(pos - camera.PIVOT, 2 * (BASE_POS - camera.PIVOT))
    np.testing.assert_allclose(quat, BASE_QUAT, atol=1e-12)
    pos, quat = camera.camera_pose(CameraSpec(5, "orientation", yaw_deg=10, pitch_deg=-6), BASE_POS, BASE_QUAT)
    np.testing.assert_allclose(pos, BASE_POS)
    angle = 2 * np.degrees(np.arccos(min(1.0, abs(np.dot(quat, BASE_QUAT)))))
    assert 10 < angle < 16  # composed 10 deg and 6 deg rotations


def test_language_rewrites_are_deterministic_and_never_name_the_perturbation():
    instruction = "pick up the black bowl between the plate and the ramekin and place it on the plate"
    for level in range(1, 6):
        text = language.rewrite(instruction, level, seed=3)
        assert text == language.rewrite(instruction, level, seed=3)
        assert text.lower().rstrip(".") != instruction
        assert not any(d in text.lower() for d in DIMENSIONS if d != "language") and "level" not in text.lower()
    texts = {language.rewrite(instruction, 1, seed=s) for s in range(10)}
    assert len(texts) > 3


def test_commonsense_rewrite_replaces_object_names_consistently():
    text = language.rewrite("put the bowl on the plate and push the plate", 3, seed=0).lower()
    assert "bowl" not in text and "plate" not in text
    described = language.vocabulary()["objects"]["plate"]
    assert sum(text.count(d.lower()) for d in described) == 2  # both mentions name the same dish


def test_spec_round_trip_and_errors():
    spec = RobotSpec(2, "init_joints", magnitude=0.2, direction=tuple(np.eye(7)[3]))
    assert spec_from_dict("robot", spec.to_dict()) == spec
    hash(spec)  # EnvConfig must stay hashable
    with pytest.raises(ConfigError, match="unknown dimension 'lite'"):
        spec_from_dict("lite", {})
    with pytest.raises(ConfigError, match="level"):
        CameraSpec(6, "orbit")
    with pytest.raises(ConfigError, match="unit vector"):
        RobotSpec(1, "init_joints", direction=(1.0, 1.0, 0, 0, 0, 0, 0))


BDDL = """(define (problem LIBERO_Tabletop_Manipulation)
  (:domain robosuite)
  (:language put the bowl on the plate)
    (:regions
      (plate_region
          (:target main_table)
          (:ranges (
              (0.05 0.19 0.07 0.21)
            )
          )
      )
      (bowl_region
          (:target main_table)
          (:ranges (
              (-0.11 -0.01 -0.09 0.01)
            )
          )
      )
    )
  (:fixtures
    main_table - table
  )
  (:objects
    akita_black_bowl_1 - akita_black_bowl
    plate_1 - plate
  )
  (:init
    (On akita_black_bowl_1 main_table_bowl_region)
    (On plate_1 main_table_plate_region)
  )
  (:goal
    (And (On akita_black_bowl_1 plate_1))
  )
)
"""


def test_distractor_bddl_adds_objects_regions_and_init_lines():
    distractors = layout.plan_distractors(BDDL, 3, np.random.default_rng(0))
    assert len(distractors) == 3 and len({c for c, _, _ in distractors}) == 3
    for _, x, y in distractors:  # clear of both objects' regions
        assert np.hypot(x - 0.06, y - 0.2) > layout.OBJECT_CLEARANCE and np.hypot(x + 0.1, y) > layout.OBJECT_CLEARANCE
    text = layout.with_distractors(BDDL, distractors)
    regions = layout.parse_regions(text)
    assert len(regions) == 5 and regions["pokevla_distractor_region_0"]["target"] == "main_table"
    names = [n for n, _ in layout._names_in(text, "(:objects")]
    assert names[2:] == [layout.distractor_name(c, i) for i, (c, _, _) in enumerate(distractors)]
    assert f"(On {names[2]} main_table_pokevla_distractor_region_0)" in text
    assert "(:goal\n    (And (On akita_black_bowl_1 plate_1))" in text  # the task is unchanged


def test_a_scattered_bddl_widens_the_table_regions_but_not_a_goal_region_and_adds_distractors():
    text = BDDL.replace("(:target main_table)\n          (:ranges (\n              (0.05 0.19 0.07 0.21)\n            )\n          )",
                        "(:target main_table)\n          (:ranges (\n              (0.05 0.19 0.07 0.21)\n            )\n          )"
                        "\n          (:yaw_rotation (\n              (3.14 3.14)\n            )\n          )")
    goal_region = text.replace("(On akita_black_bowl_1 plate_1)", "(On akita_black_bowl_1 main_table_plate_region)")
    categories = layout.plan_categories(text, 2, np.random.default_rng(0))
    assert len(set(categories)) == 2 and not {"akita_black_bowl", "plate"} & set(categories)
    (x0, x1), (y0, y1) = layout.SCATTER_AREA
    scattered = layout.scattered(text, categories)
    regions = layout.parse_regions(scattered)
    assert regions["plate_region"]["ranges"] == regions["bowl_region"]["ranges"] == [(x0, y0, x1, y1)]
    assert "(:yaw_rotation (\n              (3.14 3.14)" in scattered  # orientations are kept
    assert [c for n, c in layout.objects_in(scattered) if layout.is_distractor(n)] == list(categories)
    assert regions["pokevla_distractor_region_1"]["ranges"] == [(x0, y0, x1, y1)]
    assert layout.on_support(scattered)[:2] == ["akita_black_bowl_1", "plate_1"]  # the init lines stay
    kept = layout.parse_regions(layout.scattered(goal_region))
    assert kept["plate_region"]["ranges"] == [(0.05, 0.19, 0.07, 0.21)]  # the goal's own region keeps its size
    assert kept["bowl_region"]["ranges"] == [(x0, y0, x1, y1)]


def test_a_recomposed_bddl_loses_only_the_things_the_task_does_not_use():
    # a second bowl on the same line, a milk carton, a microwave whose region nothing uses and a cabinet
    # whose drawer the init uses
    text = (BDDL.replace("    akita_black_bowl_1 - akita_black_bowl\n",
                         "    akita_black_bowl_1 akita_black_bowl_2 - akita_black_bowl\n    milk_1 - milk\n")
            .replace("    main_table - table\n", "    main_table - table\n    microwave_1 - microwave\n"
                     "    wooden_cabinet_1 - wooden_cabinet\n")
            .replace("    (:regions\n", "    (:regions\n      (heating_region\n          (:target microwave_1)\n      )\n"
                     "      (top_region\n          (:target wooden_cabinet_1)\n      )\n")
            .replace("    (On plate_1 main_table_plate_region)\n",
                     "    (On plate_1 main_table_plate_region)\n    (On akita_black_bowl_2 main_table_bowl_region)\n"
                     "    (In milk_1 wooden_cabinet_1_top_region)\n    (On microwave_1 main_table_plate_region)\n"
                     "    (On wooden_cabinet_1 main_table_bowl_region)\n"))
    assert layout.droppable(text) == ["akita_black_bowl_2", "milk_1", "microwave_1"]
    lean = layout.scattered(text, ("ketchup",), drop=("akita_black_bowl_2", "microwave_1"))
    assert {n for n, _ in layout.things_in(lean)} == {"akita_black_bowl_1", "milk_1", "plate_1", "ketchup_pokevla_0",
                                                     "main_table", "wooden_cabinet_1"}
    assert "    akita_black_bowl_1 - akita_black_bowl\n" in lean and "heating_region" not in lean
    assert "top_region" in lean and "(:goal\n    (And (On akita_black_bowl_1 plate_1))" in lean
    wide = layout.plan_categories(text, 3, np.random.default_rng(1), layout.SCENE_OBJECT_CATEGORIES)
    assert len(set(wide)) == 3 and set(wide) <= set(layout.SCENE_OBJECT_CATEGORIES)
    assert not set(wide) & {"akita_black_bowl", "plate", "milk"}  # never a category the scene holds
    with pytest.raises(ValueError, match="plate_1 cannot be dropped"):
        layout.scattered(text, drop=("plate_1",))  # the goal names it


def test_shift_plan_has_the_level_magnitude():
    for level, cm in layout.SHIFT_CM_BY_LEVEL.items():
        (name, dx, dy), = layout.plan_shifts(["bowl_1"], level, np.random.default_rng(level))
        assert name == "bowl_1" and np.isclose(np.hypot(dx, dy), cm / 100, atol=2e-4)


def test_layout_spec_kind_matches_its_parameters():
    from pokevla.sim.perturb import LayoutSpec

    with pytest.raises(ConfigError, match="'shift' layout needs shifts"):
        LayoutSpec(1, "shift", distractors=(("milk", 0.1, 0.1),))
    spec = LayoutSpec(2, "distractors", distractors=(("milk", 0.1, 0.1),), scene_seed=4)
    assert spec_from_dict("layout", spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="'scene' layout needs bddl_text and sim_state"):
        LayoutSpec(3, "scene", bddl_text="(define (problem p))")
    with pytest.raises(ConfigError, match="'shift' layout needs shifts and nothing else"):
        LayoutSpec(3, "shift", shifts=(("bowl_1", 0.1, 0.0),), sim_state=(0.0, 1.0))
    scene = LayoutSpec(3, "scene", bddl_text="(define (problem p))", sim_state=(0.0, 1.0))
    assert spec_from_dict("layout", scene.to_dict()) == scene  # JSON lists come back as the tuple of floats
    with pytest.raises(ConfigError, match="'scatter' layout needs bddl_text and nothing else"):
        LayoutSpec(2, "scatter", bddl_text="(define (problem p))", sim_state=(0.0, 1.0))
    scatter = LayoutSpec(2, "scatter", bddl_text="(define (problem p))", scene_seed=7)
    assert reset_kwargs(scatter, trial=3) == {"seed": 7}  # it has no init states: every episode is sampled


def test_only_objects_standing_on_the_table_are_shiftable():
    text = BDDL.replace("(On plate_1 main_table_plate_region)", "(On plate_1 akita_black_bowl_1)")
    assert layout.on_support(BDDL) == ["akita_black_bowl_1", "plate_1"]
    assert layout.on_support(text) == ["akita_black_bowl_1"]
