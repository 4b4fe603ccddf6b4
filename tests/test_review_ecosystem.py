"""convolab's models inside the PyTorch ecosystem's own habits (found by a tester of torch.compile, quantization
and friends): a torch.compile'd model's saved weights load through pretrained=, and a LeNet quantized by
`quantize_dynamic` takes a new classifier."""
from __future__ import annotations

import warnings

import pytest
import torch

import convolab


@pytest.mark.parametrize("prefix", ["_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_pretrained_file_of_a_compiled_or_wrapped_models_state_dict_loads(tmp_path, prefix):
    # (what torch.save(torch.compile(m).state_dict()) writes; before: 116 missing, 116 unexpected)
    model = convolab.create_model("resnet20")
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, tmp_path / "c.pth")
    loaded = convolab.create_model("resnet20", pretrained=tmp_path / "c.pth")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_reset_classifier_of_a_dynamically_quantized_lenet():
    # (before: AttributeError: 'function' object has no attribute 'device', a quantized Linear's weight a method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(convolab.create_model("lenet5").eval(), {torch.nn.Linear})
        quantized.reset_classifier(3)
        assert quantized(torch.randn(2, 1, 28, 28)).shape == (2, 3)
    model = convolab.create_model("lenet5").double()
    model.reset_classifier(4)  # (and where the layers live, as before)
    assert model.head.fc.weight.dtype == torch.float64
