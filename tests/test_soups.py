"""Weight averaging: epoch averages, uniform and greedy soups, on the tiny zoo's checkpoints."""

import pytest
import safetensors.torch
import torch

from modelzoos.data import load_image_tensors
from modelzoos.soups import average, epoch_average, greedy_soup, uniform_soup
from modelzoos.training import evaluate
from modelzoos.training.engine import initial_model
from modelzoos.zoo_dir import ZooDir


def test_average_is_the_elementwise_mean():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    mean = average([a, b])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and mean["n"].item() == 3
    assert torch.equal(uniform_soup([a])["w"], a["w"])
    assert torch.equal(epoch_average([a, b, b], 2)["w"], b["w"])
    with pytest.raises(ValueError, match="other tensors"):
        average([a, {"v": torch.zeros(2), "n": torch.tensor(1)}])
    with pytest.raises(ValueError, match="k must be between 1 and the 3 epochs"):
        epoch_average([a, b, b], 4)


def test_greedy_soup_keeps_what_helps_and_drops_what_hurts(tiny_zoo):
    spec, root = tiny_zoo
    zoo = ZooDir(root)
    entry = spec.models()[0]
    data = load_image_tensors(spec.image_data)
    epochs = [safetensors.torch.load_file(zoo.checkpoint(entry.model_id, e)) for e in (1, 2)]
    noise = {k: torch.randn_like(v) * 10 for k, v in epochs[1].items()}

    def score(state):
        model = initial_model(spec, entry.factors)
        model.load_state_dict(state)
        return evaluate(model, data.val_x, data.val_y)[1]

    soup, used = greedy_soup([noise, epochs[0], epochs[1]], score)
    assert 0 not in used  # the noise made the soup worse and was left out
    assert used[0] == max((1, 2), key=lambda i: score([noise, *epochs][i]))
    assert score(soup) >= max(score(e) for e in epochs)
    assert score(uniform_soup([noise, *epochs])) < score(soup)
    averaged = epoch_average(epochs, 2)
    assert all(torch.allclose(averaged[k], (epochs[0][k] + epochs[1][k]) / 2) for k in averaged)
