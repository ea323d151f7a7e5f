"""FastNet: the whitening layer whitens, shapes, exact state_dict round trip, training steps in fp32 and bf16."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from cifar_lab.config import TrainConfig
from cifar_lab.fastnet import ConvGroup, FastNet, Muon, _patches, orthogonalize
from cifar_lab.models import build_model
from cifar_lab.optim import build_optimizer


def correlated_images(n: int = 64, side: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 3, side, side) float with strongly correlated neighbouring pixels and channels, like photos."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, side, side, generator=g)
    x = x + torch.roll(x, 1, dims=3) + 0.5 * torch.roll(x, 1, dims=2)  # spatial correlation
    return x + x.mean(dim=1, keepdim=True) * 2 + 0.3  # channel correlation and a non-zero mean


def test_whitening_layer_gives_identity_patch_covariance():
    torch.manual_seed(0)
    model = FastNet(width=8)
    x = correlated_images()
    before = _patches(x, 2)
    assert (torch.cov(before.T) - torch.eye(12)).abs().max() > 1.0  # the data is far from white
    model.init_from_data(x)
    with torch.no_grad():
        out = model.whiten(x)  # (B, 24, 31, 31)
    features = out.permute(0, 2, 3, 1).reshape(-1, 24)
    first = features[:, :12]
    covariance = first.T @ first / len(first)  # about zero mean, so this is the covariance
    assert first.mean(dim=0).abs().max() < 1e-4
    assert (covariance - torch.eye(12)).abs().max() < 0.01
    assert torch.allclose(features[:, 12:], -first, atol=1e-5)  # second half: the same directions negated


def test_whitening_filters_are_frozen_and_left_out_of_the_optimizer():
    model = FastNet(width=8)
    assert not model.whiten.weight.requires_grad
    groups = model.param_groups(TrainConfig(arch="fastnet", opt="sgd", lr=0.5, weight_decay=1e-3))
    grouped = [p for g in groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len(trainable) == len({id(p) for p in grouped})
    assert all(p is not model.whiten.weight for p in grouped)


def test_param_groups_units():
    model = FastNet(width=8)
    config = TrainConfig(arch="fastnet", opt="sgd", lr=0.5, weight_decay=1e-3)
    sgd = build_optimizer(model, config).param_groups  # each group's peak lr: lr * its lr_scale
    assert sgd[0]["lr"] == 0.5 and sgd[0]["weight_decay"] == 1e-3
    assert sgd[1]["lr"] == 0.5 * config.bias_lr_scale and sgd[1]["lr_scale"] == config.bias_lr_scale == 64.0
    assert sgd[1]["lr"] * sgd[1]["weight_decay"] == pytest.approx(0.5 * 1e-3)  # same decay per step
    adam = build_optimizer(model, TrainConfig(arch="fastnet", opt="adam", lr=1e-3, weight_decay=0.0)).param_groups
    assert adam[1]["lr"] == 1e-3


def test_the_group_scales_and_muons_momentum_come_from_the_config():
    model = FastNet(width=8)
    config = TrainConfig(arch="fastnet", opt="muon", lr=0.5, bias_lr_scale=16.0, muon_lr_scale=0.3, muon_momentum=0.7)
    weights, biases, filters = build_optimizer(model, config).param_groups
    assert (weights["lr"], weights["momentum"]) == (0.5, config.momentum)
    assert (biases["lr_scale"], biases["lr"]) == (16.0, 0.5 * 16.0)
    assert (filters["lr_scale"], filters["lr"], filters["momentum"]) == (0.3, 0.5 * 0.3, 0.7)
    assert filters["orthogonalize"] and not weights["orthogonalize"]


@pytest.mark.parametrize("width", [4, 8, 16])
@pytest.mark.parametrize("side", [32, 24])
def test_output_shapes(width, side):
    model = FastNet(width=width, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 3, side, side)).shape == (3, 7)
    assert model.head.in_features == 4 * width


def test_state_dict_round_trip_is_exact():
    torch.manual_seed(0)
    model = FastNet(width=8, dropout=0.1)
    model.init_from_data(correlated_images(16))
    _train_steps(model, steps=2)  # moves the BN running stats and weights away from their init
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    restored = FastNet(width=8, dropout=0.1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    state, state2 = model.state_dict(), restored.state_dict()
    assert state.keys() == state2.keys() and "whiten.weight" in state
    assert "groups.2.conv3.weight" in state and "groups.1.conv3.weight" not in state  # the last group only
    assert all(torch.equal(state[k], state2[k]) for k in state)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), restored.eval()(x))


def _train_steps(model: FastNet, steps: int, bf16: bool = False, lr: float = 0.2) -> list[float]:
    """A few SGD steps on one fixed synthetic batch; returns the losses."""
    g = torch.Generator().manual_seed(1)
    x = correlated_images(32, seed=1).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), generator=g)
    config = TrainConfig(arch="fastnet", opt="sgd", lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt = build_optimizer(model, config)
    model.train()
    losses = []
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("bf16", [False, True])
def test_training_steps_lower_the_loss(bf16):
    torch.manual_seed(0)
    model = FastNet(width=8).to(memory_format=torch.channels_last)
    model.init_from_data(correlated_images(16))
    whiten_before = model.whiten.weight.clone()
    losses = _train_steps(model, steps=8, bf16=bf16)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.7 * losses[0]
    assert torch.equal(model.whiten.weight, whiten_before)  # frozen
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast leaves the master weights fp32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    model = FastNet(width=8).cuda()
    model.init_from_data(correlated_images(8).cuda())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert model(torch.randn(2, 3, 32, 32, device="cuda")).shape == (2, 10)


def test_orthogonalize_evens_out_singular_values():
    torch.manual_seed(0)
    ill = torch.linalg.qr(torch.randn(40, 16)).Q.T * torch.logspace(-1, 1, 16)[:, None]  # singular values 0.1..10
    for matrix in (ill, ill.T):  # wide and tall
        before, after = torch.linalg.svdvals(matrix), torch.linalg.svdvals(orthogonalize(matrix))
        assert orthogonalize(matrix).shape == matrix.shape
        assert before.max() / before.min() > 99 and after.max() / after.min() < 10  # from 100
        assert after.max() < 1.3
    plain = torch.linalg.svdvals(orthogonalize(torch.randn(16, 40)))
    assert plain.min() > 0.6 and plain.max() < 1.3


def test_muon_matches_sgd_outside_orthogonal_groups():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5, 3))
    b = torch.nn.Parameter(a.detach().clone())
    muon = Muon([a], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    sgd = torch.optim.SGD([b], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for _ in range(3):
        grad = torch.randn(5, 3)
        a.grad, b.grad = grad.clone(), grad.clone()
        muon.step()
        sgd.step()
    assert torch.allclose(a, b, atol=1e-6)


def test_muon_groups_keep_filter_norms_and_train():
    torch.manual_seed(0)
    model = FastNet(width=8).to(memory_format=torch.channels_last)
    model.init_from_data(correlated_images(16))
    config = TrainConfig(arch="fastnet", opt="muon", lr=0.5, weight_decay=5e-4)
    groups = model.param_groups(config)
    filters = next(g for g in groups if g.get("orthogonalize"))["params"]
    assert len(filters) == 7 and all(p.ndim == 4 for p in filters)  # two convs per group, a third in the last
    assert len({id(p) for g in groups for p in g["params"]}) == sum(p.requires_grad for p in model.parameters())
    optimizer = build_optimizer(model, config.replace(momentum=0.85))
    assert isinstance(optimizer, Muon)
    x = correlated_images(32, seed=1).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    for p in filters:  # normalised before each step, then moved by about lr: the norm stays near sqrt(out)
        assert abs(p.norm().item() / len(p) ** 0.5 - 1) < 0.5


def test_start_epoch_freezes_the_whitening_bias_after_a_third_of_training():
    torch.manual_seed(0)
    model = FastNet(width=8)
    model.init_from_data(correlated_images(16))
    config = TrainConfig(arch="fastnet", opt="muon", lr=0.5, weight_decay=5e-4)
    groups_before = [[id(p) for p in g["params"]] for g in model.param_groups(config)]
    trains = []
    for epoch in range(6):
        model.start_epoch(epoch, 6)
        trains.append(model.whiten.bias.requires_grad)
    assert trains == [True, True, False, False, False, False]
    model.start_epoch(0, 2)
    assert model.whiten.bias.requires_grad  # always at least one epoch
    model.start_epoch(1, 2)
    assert [[id(p) for p in g["params"]] for g in model.param_groups(config)] == groups_before
    bias = model.whiten.bias.detach().clone()
    _train_steps(model, steps=2)
    assert torch.equal(model.whiten.bias, bias)  # frozen: no gradient, no update


def test_the_whitening_bias_trains_for_the_configured_part_of_the_epochs():
    for fraction, expected in ((0.5, [True] * 3 + [False] * 3), (1.0, [True] * 6), (0.0, [True] + [False] * 5)):
        model = build_model(TrainConfig(arch="fastnet", width=8, whiten_bias_fraction=fraction))
        trains = []
        for epoch in range(6):
            model.start_epoch(epoch, 6)
            trains.append(model.whiten.bias.requires_grad)
        assert trains == expected, fraction


def _two_conv_model(width: int = 8) -> FastNet:
    """A FastNet laid out as before its last group had a third conv."""
    model = FastNet(width=width)
    model.groups[2].conv3 = model.groups[2].norm3 = None
    return model


def test_the_skip_conv_starts_as_a_residual_block():
    torch.manual_seed(0)
    group = FastNet(width=8).groups[2].eval()
    x = torch.randn(2, 32, 7, 7)
    with torch.no_grad():
        first = F.gelu(group.norm1(F.max_pool2d(group.conv1(x), 2)))
        second = F.gelu(group.norm2(group.conv2(first)))
        expected = F.gelu(group.norm3(group.conv3(second)) + first)
        assert torch.allclose(group(x), expected)
        assert torch.equal(group.conv3.weight[:, :, 1, 1], torch.eye(32))  # dirac: passes its input through


@pytest.mark.parametrize("side", [7, 8, 14, 15])
def test_a_group_computing_only_what_its_pool_reads_gives_the_same_outputs_and_gradients(side):
    torch.manual_seed(0)
    full, pooled_only = ConvGroup(8, 16), ConvGroup(8, 16, pooled_only=True)
    pooled_only.load_state_dict(full.state_dict())
    x = torch.randn(4, 8, side, side, requires_grad=True)  # train mode: BatchNorm uses the pooled batch statistics
    results = []
    for group in (full, pooled_only):
        out = group(x)
        results.append((out, *torch.autograd.grad(out.square().sum(), (x, group.conv1.weight))))
    assert results[1][0].shape == (4, 16, side // 2, side // 2)
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected)


def test_only_the_middle_group_skips_the_rows_its_pool_drops():
    assert [g.pooled_only for g in FastNet(width=8).groups] == [False, True, False]


def test_a_checkpoint_from_before_the_third_conv_loads_and_predicts_as_trained():
    torch.manual_seed(0)
    old = _two_conv_model()
    old.init_from_data(correlated_images(16))
    _train_steps(old, steps=2)
    state = old.state_dict()
    assert not any(".conv3." in k or ".norm3." in k for k in state)
    restored = FastNet(width=8)
    restored.load_state_dict(state)  # strict
    assert restored.groups[2].conv3 is None and restored.state_dict().keys() == state.keys()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(old.eval()(x), restored.eval()(x))
    state.pop("groups.1.conv2.weight")
    with pytest.raises(RuntimeError, match="groups.1.conv2.weight"):  # other gaps are still refused
        FastNet(width=8).load_state_dict(state)


def test_orthogonalize_is_the_plain_newton_schulz_iteration():
    def plain(g: torch.Tensor) -> torch.Tensor:  # the textbook form: every step multiplies the wide matrix
        x = g / (g.norm() + 1e-7)
        x = x if x.shape[0] <= x.shape[1] else x.T
        for _ in range(3):
            gram = x @ x.T
            x = 3.4445 * x + (-4.7750 * gram + 2.0315 * gram @ gram) @ x
        return x if g.shape[0] <= g.shape[1] else x.T

    torch.manual_seed(0)
    for shape in ((48, 216), (192, 1728), (60, 20)):
        g = torch.randn(shape)
        assert torch.allclose(orthogonalize(g, steps=3), plain(g), atol=1e-5)
    half = torch.randn(32, 96, dtype=torch.bfloat16)
    assert orthogonalize(half).dtype == torch.bfloat16
