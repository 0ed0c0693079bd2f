"""The features of a PokeVLA demonstration dataset, in LeRobot v3's `info.json` vocabulary.

Images, goal masks and depth are stored as PNG bytes inside parquet (LeRobot's `image` dtype):
training decodes a 128-256 px PNG in well under a millisecond, where a video would need a decoder
and seeking. Depth is a 16-bit PNG in millimetres (`info.json` records the scale), masks are 8-bit
PNGs whose value k marks the k-th object of interest of the task.
"""

from __future__ import annotations

VIEWS = ("primary", "wrist")
STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_ax", "eef_ay", "eef_az", "gripper_left", "gripper_right"]
ACTION_NAMES = ["dx", "dy", "dz", "dax", "day", "daz", "gripper"]
DEPTH_SCALE = 1000.0  # stored value = metres * DEPTH_SCALE (uint16 PNG: 1 mm steps up to 65 m)

# LeRobot's bookkeeping columns, present in every v3 dataset.
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def demo_features(resolution: int) -> dict[str, dict]:
    """Feature specs of a generated demonstration dataset at `resolution` px."""
    hw = [resolution, resolution]
    features: dict[str, dict] = {}
    for view in VIEWS:
        features[f"observation.images.{view}"] = {"dtype": "image", "shape": [*hw, 3], "names": ["height", "width", "channels"]}
    features["observation.state"] = {"dtype": "float32", "shape": [8], "names": STATE_NAMES}
    features["action"] = {"dtype": "float32", "shape": [7], "names": ACTION_NAMES}
    for view in VIEWS:
        features[f"observation.masks.{view}"] = {
            "dtype": "image", "shape": [*hw, 1], "names": ["height", "width", "channels"],
            "info": {"encoding": "png8", "meaning": "0 background, k = k-th object of interest"},
        }
        features[f"observation.depth.{view}"] = {
            "dtype": "image", "shape": [*hw, 1], "names": ["height", "width", "channels"],
            "info": {"encoding": "png16", "unit": "m", "scale": DEPTH_SCALE},
        }
        features[f"observation.intrinsics.{view}"] = {"dtype": "float32", "shape": [9], "names": None,
                                                      "info": {"layout": "row-major 3x3 K of the stored image"}}
        features[f"observation.extrinsics.{view}"] = {"dtype": "float32", "shape": [16], "names": None,
                                                      "info": {"layout": "row-major 4x4 camera(OpenCV)->robot base"}}
    features.update(INDEX_FEATURES)
    return features
