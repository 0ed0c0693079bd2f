"""Raw batches -> model inputs, and one clear error for every kind of bad input."""

from __future__ import annotations

import pytest
import torch

from pokevla.model.processor import InputError
from pokevla.model.synthetic import synthetic_batch

from .conftest import override


@pytest.mark.parametrize("prompt_first", [False, True])
def test_prompt_layout_puts_padding_between_images_and_prompt(make_model, tiny, prompt_first):
    cfg = override(tiny, {"llm.prompt_first": prompt_first})
    model = make_model(cfg)
    batch = synthetic_batch(cfg, 2, training=False)
    batch["task"] = ["go", "put the black bowl on the plate"]
    x = model.processor.inference(batch)
    ids, mask, t = x["input_ids"], x["attention_mask"], model.token_ids
    M, Q = len(cfg.views) * cfg.grid ** 2, cfg.llm.num_queries
    images = slice(-M - Q - 1, -Q - 1) if prompt_first else slice(0, M)
    prompt = slice(0, ids.shape[1] - M - Q - 1) if prompt_first else slice(M, -Q - 1)
    assert (ids[:, images] == t.image).all() and (ids[:, -Q - 1] == t.seg).all() and (ids[:, -Q:] == t.action).all()
    pad = int((mask[0] == 0).sum())
    assert pad > 0 and (mask[1] == 1).all()
    padding = slice(prompt.stop - pad, prompt.stop) if prompt_first else slice(M, M + pad)
    assert (mask[0, padding] == 0).all() and (ids[0, padding] == t.pad).all()
    text = model.tokenizer.decode(ids[1, prompt])
    assert text == cfg.llm.prompt.format(instruction="put the black bowl on the plate")


@pytest.mark.parametrize("prompt_first", [False, True])
def test_padding_does_not_change_a_sample(make_model, tiny, prompt_first):
    cfg = override(tiny, {"llm.prompt_first": prompt_first})
    model = make_model(cfg).eval()
    batch = synthetic_batch(cfg, 2, training=False)
    batch["task"] = ["go", "put the black bowl on the plate and then open the drawer"]
    alone = {k: v[:1] for k, v in batch.items()}
    torch.testing.assert_close(model.predict_action_chunk(batch)[:1], model.predict_action_chunk(alone),
                               rtol=1e-4, atol=1e-5)


def test_images_are_resized_to_the_model_size_and_scaled(make_model, tiny):
    model = make_model()
    batch = synthetic_batch(tiny, 1, image_size=200)
    batch["observation.images.wrist"][:] = 255
    x = model.processor.training(batch)
    S = tiny.vision.image_size
    assert x["pixel_values"].shape == (1, 2, 3, S, S) and x["pixel_values"].dtype == torch.float32
    assert torch.allclose(x["pixel_values"][:, 1], torch.ones(1))
    assert x["masks"].shape == (1, 2, S, S) and 0 < float(x["masks"].mean()) < 1


def test_augmentation_runs_on_training_batches_only(make_model, tiny):
    model = make_model()
    model.processor.augment = lambda pixels: pixels * 0
    batch = synthetic_batch(tiny, 1)
    assert float(model.processor.training(batch)["pixel_values"].abs().sum()) == 0
    assert float(model.processor.inference(batch)["pixel_values"].abs().sum()) > 0


def _bad(batch, **changes):
    out = dict(batch)
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("change,message", [
    (dict(observation__images__primary=torch.zeros(2, 128, 128, 3)),
     r"observation.images.primary: expected uint8 \(B, H, H, 3\), got float32 \(2, 128, 128, 3\)"),
    (dict(observation__images__wrist=torch.zeros(2, 128, 96, 3, dtype=torch.uint8)),
     r"observation.images.wrist: expected uint8 \(B, H, H, 3\) with B=2, got uint8 \(2, 128, 96, 3\)"),
    (dict(observation__images__wrist=torch.zeros(2, 128, 128, dtype=torch.uint8)),
     r"observation.images.wrist: expected uint8 \(B, H, H, 3\) with B=2, got uint8 \(2, 128, 128\)"),
    (dict(observation__images__wrist=None), r"missing observation.images.wrist: expected uint8 \(B, H, H, 3\)"),
    (dict(observation__state=torch.zeros(2, 7)),
     r"observation.state: expected float \(B, 8\) with B=2, got float32 \(2, 7\)"),
    (dict(observation__state=torch.zeros(3, 8)),
     r"observation.state: expected float \(B, 8\) with B=2, got float32 \(3, 8\)"),
    (dict(task="pick"), r"task: expected a list of 2 instruction strings, got str"),
    (dict(task=["pick"]), r"task: expected a list of 2 instruction strings, got list of length 1"),
    (dict(task=["pick", "place " * 400]),
     r"task\[1\]: the instruction is 2399 tokens long; at most 303 fit the context \(llm.max_length=384"),
])
def test_bad_observations_are_named(make_model, tiny, change, message):
    model = make_model()
    with pytest.raises(InputError, match=message):
        model.predict_action_chunk(_bad(synthetic_batch(tiny, 2, training=False), **change))


@pytest.mark.parametrize("change,message", [
    (dict(action=None), r"missing action: expected float \(B, 8, 7\)"),
    (dict(action=torch.zeros(2, 8, 6)), r"action: expected float \(B, 8, 7\) with B=2, got float32 \(2, 8, 6\)"),
    (dict(action_is_pad=torch.zeros(2, 8)), r"action_is_pad: expected bool \(B, 8\) with B=2, got float32 \(2, 8\)"),
    (dict(observation__masks__primary=None), r"missing observation.masks.primary: expected uint8/bool \(B, H, H\)"),
    (dict(observation__masks__wrist=torch.zeros(2, 64, 64, dtype=torch.uint8)),
     r"observation.masks.wrist: expected uint8/bool \(B, H, H\) with B=2, H=128, got uint8 \(2, 64, 64\)"),
    (dict(observation__depth__wrist=None), r"missing observation.depth.wrist: expected float \(B, H, H\)"),
    (dict(observation__intrinsics__primary=torch.zeros(2, 9)),
     r"observation.intrinsics.primary: expected float \(B, 3, 3\) with B=2, got float32 \(2, 9\)"),
    (dict(observation__extrinsics__wrist=None), r"missing observation.extrinsics.wrist: expected float \(B, 4, 4\)"),
])
def test_bad_training_batches_are_named(make_model, tiny, change, message):
    model = make_model()
    with pytest.raises(InputError, match=message):
        model(_bad(synthetic_batch(tiny, 2), **change))


def test_precomputed_geometry_must_match_the_patch_grid(make_model, tiny):
    config = override(tiny, {"geometry.teacher": "precomputed", "geometry.dim": 16, "vision.crop_scale": 1.0})
    model = make_model(config)
    batch = synthetic_batch(config, 2)
    model(batch)
    batch["observation.geometry.wrist"] = torch.zeros(2, 100, 16)
    with pytest.raises(InputError, match=r"observation.geometry.wrist: expected float \(B, 36, 16\) with B=2"):
        model(batch)


def test_missing_statistics_is_a_clear_error(make_model, tiny):
    model = make_model(stats=None)
    with pytest.raises(Exception, match="no normalisation statistics"):
        model.predict_action_chunk(synthetic_batch(tiny, 1, training=False))


def test_crop_is_random_in_training_centred_at_inference_and_moves_the_intrinsics(make_model, tiny):
    from pokevla.model.processor import CropViews

    H = 40
    image = torch.arange(H * H, dtype=torch.float32).reshape(1, H, H).expand(3, H, H)
    K = torch.tensor([[[-50.0, 0, 20], [0, 50, 20], [0, 0, 1]]]).expand(3, 3, 3)
    batch = {"observation.images.primary": image, "observation.depth.primary": image.clone(), "observation.intrinsics.primary": K}
    side = round(H * 0.64 ** 0.5)  # 32
    centred = CropViews(["primary"], 0.64, random=False)(batch)
    assert centred["observation.images.primary"].shape == (3, side, side)
    assert torch.equal(centred["observation.images.primary"][0], image[0, 4:36, 4:36])
    assert torch.equal(centred["observation.intrinsics.primary"][:, :2, 2], torch.full((3, 2), 16.0))
    torch.manual_seed(0)
    crops = CropViews(["primary"], 0.64, random=True)(batch)
    for img, depth, k in zip(crops["observation.images.primary"], crops["observation.depth.primary"], crops["observation.intrinsics.primary"]):
        y0, x0 = divmod(int(img[0, 0]), H)  # the pixel values encode their position
        assert torch.equal(depth, img) and k[0, 2] == 20 - x0 and k[1, 2] == 20 - y0
    assert len({int(img[0, 0]) for img in crops["observation.images.primary"]}) > 1
