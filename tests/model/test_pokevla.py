"""The whole model on the tiny preset: shapes through every head, gradients, ablations, overfitting."""

from __future__ import annotations

import pytest
import torch

from pokevla.model.normalize import ACTION
from pokevla.model.synthetic import synthetic_batch

from .conftest import override


@pytest.mark.parametrize("B", [1, 3])
def test_shapes_through_every_head(make_model, tiny, B):
    model = make_model()
    inputs = model.processor.training(synthetic_batch(tiny, B, image_size=80))
    V, N, Q, d = len(tiny.views), tiny.grid ** 2, tiny.llm.num_queries, tiny.llm.hidden_size
    S = tiny.vision.image_size
    assert inputs["pixel_values"].shape == (B, V, 3, S, S)
    h_v, h_seg, h_q = model.encode(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])
    assert (h_v.shape, h_seg.shape, h_q.shape) == ((B, V, N, d), (B, d), (B, Q, d))
    actions = model.expert(h_v.flatten(1, 2), h_seg, h_q, inputs["state"])
    assert actions.shape == (B, tiny.expert.chunk_size, tiny.expert.action_dim)
    coarse, fine = model.segmentation(h_seg, h_v)
    assert coarse.shape == fine.shape == (B, V, 4 * tiny.grid, 4 * tiny.grid)
    assert model.geometry.projector(h_v).shape == (B, V, N, tiny.geometry.dim)
    loss, metrics = model.compute_loss(inputs)
    assert loss.dim() == 0 and torch.isfinite(loss)
    expected = metrics["loss_action"] + 0.2 * metrics["loss_seg"] + 0.4 * metrics["loss_geo"]
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)
    raw = model.predict_action_chunk(synthetic_batch(tiny, B, image_size=256, training=False))
    assert raw.shape == (B, 8, 7) and raw.dtype == torch.float32


def test_gradients_reach_every_trainable_part(make_model, tiny):
    model = make_model()
    loss, _ = model(synthetic_batch(tiny, 2))
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert {n.split(".")[0] for n, _ in trainable} == {"vision", "projector", "language", "expert",
                                                       "segmentation", "geometry"}
    dead = [n for n, p in trainable if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def _head_loss(model, head: str, inputs: dict) -> torch.Tensor:
    """The auxiliary loss of `head`, recomputed as a differentiable term."""
    from pokevla.model.segmentation import segmentation_loss

    h_v, h_seg, _ = model.encode(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])
    if head == "segmentation":
        return segmentation_loss(*model.segmentation(h_seg, h_v), inputs["masks"], model.config.loss)[0]
    return model.geometry(h_v, inputs)[0]


@pytest.mark.parametrize("head,weight,metric,absent_keys", [
    ("segmentation", "loss.seg_weight", "loss_seg", ["observation.masks.primary", "observation.masks.wrist"]),
    ("geometry", "loss.geo_weight", "loss_geo", ["observation.depth.primary", "observation.depth.wrist"]),
])
def test_switching_off_an_auxiliary_loss_removes_its_gradients(make_model, tiny, head, weight, metric, absent_keys):
    full = make_model().eval()  # eval mode: deterministic centre crop, so both models see the same pixels
    ablated = make_model(override(tiny, {weight: 0.0})).eval()
    assert getattr(ablated, head) is None
    ablated.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith(head + ".")})
    batch = synthetic_batch(tiny, 2)

    # reference: the full model's gradient of L minus the switched-off term
    inputs = full.processor.training(batch, augment=False)
    loss, metrics = full.compute_loss(inputs)
    term = _head_loss(full, head, inputs)
    assert float(term.detach()) == pytest.approx(metrics[metric], rel=1e-5)
    w = tiny.loss.seg_weight if head == "segmentation" else tiny.loss.geo_weight
    (loss - w * term).backward()

    # the ablated model needs no targets for that head, and its gradients are exactly the reference
    ablated_loss, ablated_metrics = ablated({k: v for k, v in batch.items() if k not in absent_keys})
    ablated_loss.backward()
    assert metric not in ablated_metrics
    assert float(ablated_loss.detach()) == pytest.approx(metrics["loss"] - w * metrics[metric], rel=1e-5)
    reference = dict(full.named_parameters())
    for name, p in ablated.named_parameters():
        torch.testing.assert_close(p.grad, reference[name].grad, rtol=1e-4, atol=1e-7)


def test_all_auxiliary_losses_off_is_the_action_loss(make_model, tiny):
    model = make_model(override(tiny, {"loss.seg_weight": 0.0, "loss.geo_weight": 0.0}))
    batch = {k: v for k, v in synthetic_batch(tiny, 2).items()
             if not k.startswith(("observation.masks", "observation.depth", "observation.intrinsics",
                                  "observation.extrinsics"))}
    loss, metrics = model(batch)
    assert set(metrics) == {"loss", "loss_action", "loss_arm_l1", "loss_gripper_bce"}
    assert float(loss.detach()) == metrics["loss_action"]


def test_overfits_a_tiny_batch(make_model, tiny):
    model = make_model()
    inputs = model.processor.training(synthetic_batch(tiny, 2, seed=1))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(400):
        loss, metrics = model.compute_loss(inputs)
        first = first or metrics["loss_action"]
        if metrics["loss_action"] < first / 10:
            break
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert metrics["loss_action"] < first / 10, (first, metrics)


def test_padded_steps_do_not_count_in_the_action_loss(make_model, tiny):
    model = make_model(override(tiny, {"loss.seg_weight": 0.0, "loss.geo_weight": 0.0})).eval()  # no random crop
    batch = synthetic_batch(tiny, 2)
    batch["action_is_pad"][:] = False
    batch["action_is_pad"][1, 4:] = True
    _, before = model(batch)
    batch["action"][1, 4:] = 0.77  # changing padded targets changes nothing
    _, after = model(batch)
    assert after["loss_action"] == pytest.approx(before["loss_action"], rel=1e-6)


def test_prediction_is_raw_and_needs_no_training_heads(make_model, tiny):
    model = make_model().eval()
    inference_only = make_model(training_heads=False).eval()
    assert inference_only.segmentation is None and inference_only.geometry is None
    inference_only.load_state_dict(model.state_dict(), strict=False)
    obs = synthetic_batch(tiny, 2, training=False)
    a, b = model.predict_action_chunk(obs), inference_only.predict_action_chunk(obs)
    torch.testing.assert_close(a, b)
    inputs = model.processor.inference(obs)
    normalised = model.infer(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"], inputs["state"])
    torch.testing.assert_close(a, model.actions_from_output(normalised))
    # the gripper logit is executed as +-1 by its sign; the arm dims are un-normalised regressions
    assert set(a[..., -1].unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(a[..., :-1], model.normalizer.unnormalize(ACTION, normalised)[..., :-1])
    with pytest.raises(Exception, match="without its training heads"):
        inference_only(synthetic_batch(tiny, 2))


def test_single_numpy_observation_from_a_flipped_render(make_model, tiny):
    model = make_model().eval()
    batch = synthetic_batch(tiny, 1, training=False)
    single = {k: (v[0].numpy()[::-1, ::-1] if k.startswith("observation.images") else v[0].numpy())
              for k, v in batch.items() if k != "task"}
    single["task"] = batch["task"][0]
    batch_flipped = dict(batch, **{k: v.flip(1, 2) for k, v in batch.items() if k.startswith("observation.images")})
    torch.testing.assert_close(model.predict_action_chunk(single), model.predict_action_chunk(batch_flipped))


def test_lora_trains_adapters_only(make_model, tiny):
    model = make_model(override(tiny, {"llm.finetune": "lora", "vision.finetune": "lora", "lora.rank": 4}))
    base = [n for n, p in model.named_parameters() if n.startswith(("language.llm", "vision")) and "lora_" not in n]
    assert base and not any(dict(model.named_parameters())[n].requires_grad for n in base)
    loss, _ = model(synthetic_batch(tiny, 2))
    loss.backward()
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b)
    assert model.language.query_embed.grad is not None  # the added tokens stay trainable


def test_frozen_backbones(make_model, tiny):
    model = make_model(override(tiny, {"llm.finetune": "frozen", "vision.finetune": "frozen"}))
    trainable = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("language") else "")
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"projector", "language.seg_embed", "language.query_embed", "expert", "segmentation",
                         "geometry"}
