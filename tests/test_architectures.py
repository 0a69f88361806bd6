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


@pytest.mark.parametrize("scheme", [i for i in INITS if i != "default"])
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


@pytest.mark.parametrize("in_channels, expected", [(3, 10_853), (1, 10_565)])
def test_cnn_l_parameter_count(in_channels, expected):
    model = create_model("cnn-l", in_channels=in_channels)
    counts = [p.numel() for p in model.parameters()]
    assert sum(counts) == expected
    if in_channels == 3:
        assert [w + b for w, b in zip(counts[::2], counts[1::2])] == [448, 4640, 4335, 1220, 210]
    assert model(torch.zeros(2, in_channels, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name, channels, size", [("cnn-s", 1, 28), ("cnn-s", 3, 28), ("cnn-l", 3, 32)])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_population_forward_equals_each_module(name, channels, size, activation):
    """K stacked models at once give each model's own logits, with its own batch or a shared one,
    and with keyed dropout the very masks the per-model module draws."""
    from modelzoos.architectures.dropout import SeededDropout, keyed_dropout, step_keys

    K, B = 3, 4
    models = [create_model(name, in_channels=channels, activation=activation, dropout=0.3) for _ in range(K)]
    for k, m in enumerate(models):
        init_weights(m, "kaiming_uniform", torch.Generator().manual_seed(k))
    stacked = {n: torch.stack([dict(m.named_parameters())[n] for m in models]).detach() for n, _ in models[0].named_parameters()}
    forward = type(models[0]).population_forward
    x = torch.randn(K, B, channels, size, size)
    with torch.no_grad():
        for m in models:
            m.eval()
        own = torch.stack([m(x[k]) for k, m in enumerate(models)])
        torch.testing.assert_close(forward(stacked, {}, x, activation), own, rtol=1e-4, atol=1e-5)
        shared = torch.stack([m(x[0]) for m in models])
        torch.testing.assert_close(forward(stacked, {}, x[0], activation), shared, rtol=1e-4, atol=1e-5)
        base, p = torch.tensor([11, 22, 33]), torch.full((K,), 0.3)
        for k, m in enumerate(models):
            m.train()
            for layer, d in enumerate(mod for mod in m.modules() if isinstance(mod, SeededDropout)):
                d.key = step_keys(base[k : k + 1], 5, layer)
        dropped = torch.stack([m(x[k]) for k, m in enumerate(models)])
        keyed = forward(stacked, {}, x, activation, lambda h, layer: keyed_dropout(h, p, step_keys(base, 5, layer)), training=True)
        torch.testing.assert_close(keyed, dropped, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(dropped, own)  # dropout did drop something


@pytest.mark.parametrize("classes, expected", [(10, 11_173_962), (100, 11_220_132), (200, 11_271_432)])
def test_resnet18_parameter_count_and_torchvision_names(classes, expected):
    model = create_model("resnet18", num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == expected
    keys = list(model.state_dict())
    for name in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                 "layer2.0.downsample.1.num_batches_tracked", "layer4.1.bn2.bias", "fc.weight", "fc.bias"):
        assert name in keys
    assert keys[0] == "conv1.weight" and keys[-1] == "fc.bias"
    assert model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, classes)


def test_resnet18_population_forward_keeps_each_models_batchnorm():
    """Stacked ResNets give each model's logits, in training (batch statistics) and in eval
    (running statistics), and each model's running statistics move as its own module's do."""
    K, B = 3, 4
    models = [create_model("resnet18", num_classes=10) for _ in range(K)]
    for k, m in enumerate(models):
        init_weights(m, "kaiming_uniform", torch.Generator().manual_seed(k))
    params = {n: torch.stack([dict(m.named_parameters())[n] for m in models]).detach() for n, _ in models[0].named_parameters()}
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]).clone() for n, _ in models[0].named_buffers()}
    forward = type(models[0]).population_forward
    x = torch.randn(K, B, 3, 16, 16)
    with torch.no_grad():
        own = torch.stack([m.train()(x[k]) for k, m in enumerate(models)])
        torch.testing.assert_close(forward(params, buffers, x, "relu", training=True), own, rtol=1e-4, atol=1e-4)
        for name, b in buffers.items():
            own_b = torch.stack([dict(m.named_buffers())[name] for m in models])
            torch.testing.assert_close(b, own_b, rtol=1e-4, atol=1e-6)
        assert not torch.equal(buffers["bn1.running_mean"][0], buffers["bn1.running_mean"][1])
        assert buffers["layer3.0.downsample.1.num_batches_tracked"].tolist() == [1, 1, 1]
        shared = torch.stack([m.eval()(x[0]) for m in models])
        torch.testing.assert_close(forward(params, buffers, x[0], "relu"), shared, rtol=1e-4, atol=1e-4)


def test_vit_population_forward_batches_under_vmap_without_a_fallback():
    """transformers' ViT under vmap gives each model's logits, and with the eager attention we pick
    vmap has a batching rule for every op (SDPA on CPU has none: vmap warns and loops per model)."""
    import warnings

    K, B = 3, 4
    args = dict(in_channels=1, image_size=28, patch_size=7, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=64)
    models = []
    for k in range(K):
        torch.manual_seed(k)
        models.append(create_model("vit", **args))
    assert type(models[0]).__mro__[1].__name__ == "ViTForImageClassification"
    stacked = {n: torch.stack([dict(m.named_parameters())[n] for m in models]).detach() for n, _ in models[0].named_parameters()}
    x = torch.randn(K, B, 1, 28, 28)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*performance drop.*")
        own = torch.stack([m.eval()(x[k]).logits for k, m in enumerate(models)])
        torch.testing.assert_close(models[0].population_forward(stacked, {}, x, "gelu"), own, rtol=1e-4, atol=1e-5)
        shared = torch.stack([m(x[0]).logits for m in models])
        torch.testing.assert_close(models[0].population_forward(stacked, {}, x[0], "gelu"), shared, rtol=1e-4, atol=1e-5)
    models[0].config._attn_implementation = "sdpa"  # the check above would catch the fallback
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        models[0].population_forward(stacked, {}, x, "gelu")
    assert any("performance drop" in str(w.message) for w in caught)


def test_the_default_init_is_the_architectures_own_drawn_from_the_seed():
    from modelzoos.spec import Factors, load_spec
    from modelzoos.training.engine import initial_model

    spec = load_spec("digits-cnn-s")

    def weights(seed):
        torch.manual_seed(1234 + seed)  # the global RNG must not matter
        return initial_model(spec, Factors(seed=seed, init="default")).state_dict()

    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["conv1.weight"], c["conv1.weight"])
    assert not torch.all(a["fc1.bias"] == 0.01)  # PyTorch's own init, biases included


def test_vit_population_features_are_each_backbones_cls_token():
    """What a contrastive model's k-NN accuracy reads: the final layer-normed CLS token of each
    model's backbone (before its head), under vmap."""
    from torch.func import stack_module_state

    args = dict(image_size=28, patch_size=7, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                intermediate_size=64, in_channels=1, num_classes=16, head="mlp")
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(create_model("vit", **args).eval())
    params, buffers = stack_module_state(models)
    x = torch.randn(2, 3, 1, 28, 28)
    features = models[0].population_features(params, buffers, x)
    with torch.no_grad():
        for k, m in enumerate(models):
            torch.testing.assert_close(features[k], m.vit(x[k]).last_hidden_state[:, 0], rtol=1e-5, atol=1e-6)
    assert features.shape == (2, 3, 32)  # the hidden width, not the head's 16
