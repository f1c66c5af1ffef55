"""Reference models: exact parameter counts, torchvision parity, registry behaviour."""
import pytest
import torch
import torchvision

from resnets import models

# Published parameter counts (the issue, the paper and torchvision's model cards).
PARAMS = {
    "lenet": 61_706, "lenet_bn": 62_158,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
    "resnet110": 1_727_962,
    # Plain CIFAR twins use parameter-free shortcuts, so they match their ResNets.
    "plain20": 269_722, "plain56": 853_018,
}
IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_count(name):
    assert n_params(models.create(name)) == PARAMS[name]


def test_plain_imagenet_twins_drop_only_the_projections():
    for depth in (18, 34):
        res, plain = models.create(f"resnet{depth}"), models.create(f"plain{depth}")
        proj = sum(p.numel() for n, p in res.named_parameters() if "downsample" in n)
        assert proj > 0 and n_params(plain) == n_params(res) - proj
        assert not any(b.residual for b in plain.modules() if hasattr(b, "residual"))


@pytest.mark.parametrize("name", IMAGENET)
@pytest.mark.slow
def test_torchvision_weights_load_strictly_and_outputs_match(name):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    # Random BN statistics so that eval mode exercises every buffer, not just 0/1.
    for m in theirs.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    with torch.device("meta"):  # every value is theirs: initializing ours is wasted work
        ours = models.create(name).eval()
    assert models.spec(name).torchvision == name
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


# Above this many forward FLOPs a sample, a model's forward and backward are checked on
# the meta device (every shape, no arithmetic: ResNet-152 took 25 s on 2 cores).
META_ABOVE = 2e9


@pytest.mark.parametrize("name", models.names())
@pytest.mark.slow
def test_forward_and_backward_at_default_input(name):
    from resnets.measure.flops import meta_flops

    s = models.spec(name)
    big = meta_flops(name, "infer", 1, s.input_shape)["flops_fwd"] > META_ABOVE
    with torch.device("meta" if big else "cpu"):
        m = models.create(name)
        x = torch.randn(2, *s.input_shape)
    out = m(x)
    assert out.shape == (2, s.num_classes)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_options_num_classes_in_channels_zero_init():
    m = models.create("resnet50", num_classes=7, in_channels=1, zero_init_residual=True)
    assert m(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    assert all(float(b.bn3.weight.detach().abs().sum()) == 0
               for b in m.modules() if hasattr(b, "bn3"))
    default = models.create("resnet18")
    assert all(float(b.bn2.weight.detach().sum()) > 0
               for b in default.modules() if hasattr(b, "bn2"))
    assert models.create("resnet20", num_classes=100)(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_spec_fields():
    s = models.spec("resnet20")
    assert (s.input_shape, s.num_classes, s.family, s.torchvision) == \
        ((3, 32, 32), 10, "resnet-cifar", None)
    assert models.spec("lenet").input_shape == (1, 28, 28)
    assert set(models.names("lenet")) == {"lenet", "lenet_bn"}


def test_unknown_name_lists_close_matches():
    with pytest.raises(models.UnknownModelError) as err:
        models.create("resnet5O")
    assert "resnet50" in str(err.value) and "did you mean" in str(err.value)
    with pytest.raises(KeyError):
        models.spec("nope")


@pytest.mark.parametrize("name", IMAGENET)
def test_torchvision_yardsticks_are_registered_beside_ours(name):
    tv = models.create(f"tv_{name}")
    assert isinstance(tv, torchvision.models.ResNet)
    assert n_params(tv) == PARAMS[name]
    assert models.spec(f"tv_{name}").family == "torchvision"
