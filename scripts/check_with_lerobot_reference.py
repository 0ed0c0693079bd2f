"""Loads a PokeVLA-written dataset with the reference LeRobot v3 reader (package `lerobot-dataset`).

Run it through check_with_lerobot_reference.sh, which makes a separate environment for it.
torchvision has no CPU build that matches torch 2.13 here; the reader imports it only for its
training transforms and uses one class, ToTensor, to decode image features, so a small stand-in
with the same behaviour is registered before the import.
"""

import importlib.machinery
import sys
import types

import numpy as np
import torch


class ToTensor:
    """torchvision.transforms.ToTensor: PIL image -> CHW float tensor, 8-bit scaled to [0, 1]."""

    def __call__(self, image):
        array = np.asarray(image)
        array = array[..., None] if array.ndim == 2 else array
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        return tensor.float() / 255 if tensor.dtype == torch.uint8 else tensor.float()


def install_torchvision_stand_in() -> None:
    names = ["torchvision", "torchvision.transforms", "torchvision.transforms.v2", "torchvision.transforms.v2.functional"]
    for name in names:
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        sys.modules[name] = module
    for parent, child in zip(names, names[1:]):
        setattr(sys.modules[parent], child.rsplit(".", 1)[1], sys.modules[child])
    sys.modules["torchvision.transforms"].ToTensor = ToTensor


def main(root: str) -> None:
    install_torchvision_stand_in()
    from ledataset.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/check", root=root)
    print(f"frames {len(ds)}, episodes {ds.num_episodes}, fps {ds.fps}")
    print(ds.meta.tasks)
    for index in (0, len(ds) - 1):
        item = ds[index]
        print(f"frame {index}: episode {int(item['episode_index'])}, task {item['task']!r}")
        for key, value in item.items():
            if hasattr(value, "shape"):
                print(f"  {key:34s} {tuple(value.shape)} {value.dtype}")


if __name__ == "__main__":
    main(sys.argv[1])
