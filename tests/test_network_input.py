"""What Network says about an input it cannot take: the shape once, ragged lists by name."""

from __future__ import annotations

import numpy as np
import pytest

import netspec
from netspec.errors import InputError


@pytest.fixture(scope="module")
def lenet():
    return netspec.compile(netspec.load("specs/lenet5.yaml"))


def test_a_wrong_shape_is_named_once(lenet):
    with pytest.raises(InputError) as info:
        lenet(np.zeros((2, 28, 28)))
    assert str(info.value) == "input has shape (2, 28, 28), expected (N, 1, 28, 28)"


def test_a_ragged_nested_list_is_called_ragged(lenet):
    ragged = [[[0.0] * 28] * 28, [[0.0] * 27] * 28]
    with pytest.raises(InputError) as info:
        lenet([ragged])
    message = str(info.value)
    assert "shape ()" not in message
    assert message.startswith("input is a ragged nested list (its rows differ in length)")
    assert "expected an array of shape (N, 1, 28, 28)" in message


def test_a_regular_nested_list_works_like_its_array(lenet):
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28))
    lenet.eval()
    np.testing.assert_array_equal(lenet(x.tolist()), lenet(x))


def test_a_scalar_or_text_input_says_what_it_is(lenet):
    with pytest.raises(InputError, match=r"^input has shape \(\), expected \(N, 1, 28, 28\)$"):
        lenet(3.0)
    with pytest.raises(InputError, match=r"^input has dtype <U1, expected numbers"):
        lenet(np.full((1, 1, 28, 28), "a"))
