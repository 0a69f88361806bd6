import pytest
import torch

from modelzoos.architectures import create_model, init_weights, list_models
from modelzoos.spec import ACTIVATIONS, INITS


@pytest.mark.parametrize("in_channels, expected", [(1, 2_464), (3, 2_864)])
def test_cnn_s_parameter_count(in_channels, expected):
    model = create_model("cnn-s", in_channels=in_channels)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model(torch.zeros(2, in_channels, 28, 28)).shape == (2, 10)


def test_cnn_s_per_layer_counts():
    counts = [p.numel() for p in create_model("cnn-s").parameters()]
    per_layer = [w + b for w, b in zip(counts[::2], counts[1::2])]
    assert per_layer == [208, 1206, 100, 740, 210]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_builds(activation):
    model = create_model("cnn-s", activation=activation, dropout=0.5)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("scheme", INITS)
def test_init_is_a_function_of_the_generator(scheme):
    def weights(seed):
        m = create_model("cnn-s")
        torch.manual_seed(1234 + seed)  # the global RNG must not matter
        init_weights(m, scheme, torch.Generator().manual_seed(seed))
        return m.state_dict()

    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    assert torch.all(a["fc1.bias"] == 0.01)


def test_unknown_architecture():
    with pytest.raises(KeyError, match="cnn-s"):
        create_model("cnn-xxl")
    assert "cnn-s" in list_models()
