"""fedtutor.models: the paper's models, their sizes and a clear error for an unknown name."""

from __future__ import annotations

import pytest
import torch

from fedtutor import models


def test_parameter_counts_match_mcmahan_2017():
    assert models.count_parameters(models.MLP2NN()) == 199_210
    assert models.count_parameters(models.CNN()) == 1_663_370


@pytest.mark.parametrize("name", ["cnn", "2nn", "CNN"])
def test_models_map_images_to_ten_logits(name):
    out = models.build_model(name)(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 10)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown model 'resnet'.*'2nn', 'cnn'"):
        models.build_model("resnet")
