"""The data section: schemas, the three sources, every check that runs before training,
the seeded split, normalisation and mini-batching."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import typing

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from netspec.data import (
    DATA_SOURCES,
    AnyData,
    DataError,
    Dataset,
    DataSource,
    DigitsData,
    NpzData,
    SyntheticData,
    batch_count,
    iterate_batches,
    load_dataset,
)
from netspec.data.base import SOURCES
from netspec.errors import NetspecError

CE, MSE, L1 = "CrossEntropyLoss", "MSELoss", "L1Loss"
DATA = TypeAdapter(AnyData)


def load(spec, input_shape=(1, 8, 8), output_shape=(None, 10), loss=CE, seed=0, **kw):
    kw.setdefault("spec_dir", None)
    return load_dataset(
        spec, input_shape=input_shape, output_shape=output_shape, loss_type=loss, seed=seed, **kw
    )


def raises(match: str, spec, **kw) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        load(spec, **kw)
    return info.value


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load(DigitsData())


# -- schemas ------------------------------------------------------------------------------
def test_union_members_match_sources():
    members = typing.get_args(typing.get_args(AnyData)[0])
    assert tuple(m.model_fields["source"].default for m in members) == DATA_SOURCES


def test_schema_defaults():
    spec = DATA.validate_python({"source": "digits"})
    assert spec == DigitsData(validation_split=0.2, shuffle=True, normalize="scale")
    npz_spec = DATA.validate_python({"source": "npz", "path": "d.npz"})
    assert (npz_spec.x_key, npz_spec.y_key, npz_spec.validation_path) == ("x", "y", None)
    assert npz_spec.normalize == "none"
    assert DATA.validate_python({"source": "synthetic"}).samples == 512
    assert DATA.validate_python({"source": "digits", "validation_split": 0}).validation_split == 0


@pytest.mark.parametrize(
    "raw",
    [
        {"source": "mnist"},
        {"source": "digits", "validation_split": 1.0},
        {"source": "digits", "validation_split": -0.1},
        {"source": "digits", "validation_split": True},
        {"source": "digits", "validation_split": "0.2"},
        {"source": "digits", "shuffle": 1},
        {"source": "digits", "normalize": "minmax"},
        {"source": "digits", "path": "x.npz"},
        {"source": "npz"},
        {"source": "npz", "path": ""},
        {"source": "synthetic", "samples": 0},
        {"source": "synthetic", "samples": True},
    ],
)
def test_schema_rejects(raw):
    with pytest.raises(ValidationError):
        DATA.validate_python(raw)


def test_schema_frozen_and_documented():
    with pytest.raises(ValidationError):
        DigitsData().shuffle = False  # type: ignore[misc]
    for model in (DigitsData, NpzData, SyntheticData):
        assert model.__doc__
        assert all(f.description for f in model.model_fields.values()), model


def test_importing_data_does_not_import_sklearn():
    code = "import sys, netspec.data; print('sklearn' in sys.modules)"
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "False"


def test_every_source_is_one_registered_class_that_reads_itself():
    assert tuple(SOURCES) == DATA_SOURCES
    for name, cls in SOURCES.items():
        assert issubclass(cls, DataSource) and cls.model_fields["source"].default == name
        assert not cls.__abstractmethods__, cls


def test_a_second_class_for_a_known_source_is_refused():
    with pytest.raises(TypeError, match="data source 'digits' is defined twice"):

        class Again(DataSource):
            source: typing.Literal["digits"] = "digits"

            def read(self, input_shape, targets, seed, spec_dir):
                raise AssertionError

    assert SOURCES["digits"] is DigitsData


def test_a_lazy_numpy_survives_schemas_being_defined(tmp_path):
    # pydantic finds attribute docstrings through inspect.getmodule, which asks every module
    # in sys.modules for __file__: that must not load a lazily imported NumPy.
    (tmp_path / "schema_module.py").write_text(
        "from pydantic import BaseModel, ConfigDict\n"
        "class Schema(BaseModel):\n"
        "    model_config = ConfigDict(use_attribute_docstrings=True)\n"
        "    size: int = 1\n"
        '    """documented"""\n'
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from netspec.lazy import is_loaded, lazy_import\n"
        "np = lazy_import('numpy')\n"
        "import schema_module\n"
        "print(is_loaded(np), schema_module.Schema.model_fields['size'].description)\n"
        "print(np.zeros(2).shape, is_loaded(np))"
    )
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    assert out.stdout.split("\n")[:2] == ["False documented", "(2,) True"]


def test_data_error_is_a_netspec_error():
    assert issubclass(DataError, NetspecError)
    assert DataError("m", hint="h").hint == "h"


# -- digits -------------------------------------------------------------------------------
def test_digits_sizes_and_types(digits):
    assert len(digits.x_train) + len(digits.x_val) == 1797
    assert (len(digits.x_train), len(digits.x_val)) == (1437, 360)  # ceil(0.2 * 1797) held out
    assert digits.x_train.shape[1:] == (1, 8, 8) and digits.x_train.dtype == np.float32
    assert digits.y_train.dtype == np.int64 and set(np.unique(digits.y_train)) == set(range(10))
    assert digits.num_classes == 10 and digits.has_validation and digits.name == "digits"


def test_digits_scaled_to_unit_interval(digits):
    assert digits.x_train.min() == 0.0 and digits.x_train.max() == 1.0
    assert digits.x_val.min() >= 0.0 and digits.x_val.max() <= 1.0
    raw = load(DigitsData(normalize="none"))
    np.testing.assert_array_equal(raw.x_train / 16, digits.x_train)
    assert raw.x_train.max() == 16.0


def test_digits_flat_input_and_float64():
    flat = load(DigitsData(), input_shape=(64,), dtype="float64")
    assert flat.x_train.shape == (1437, 64) and flat.x_train.dtype == np.float64


def test_digits_standardize_uses_training_statistics():
    data = load(DigitsData(normalize="standardize"), input_shape=(64,), dtype="float64")
    std = data.x_train.std(axis=0)
    varying = std > 0
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(std[varying], 1, rtol=1e-12)
    assert not np.allclose(data.x_val.mean(axis=0)[varying], 0, atol=1e-12)  # val not refit


def test_split_is_seeded_and_in_file_order(digits):
    again, other = load(DigitsData()), load(DigitsData(), seed=1)
    np.testing.assert_array_equal(again.x_val, digits.x_val)
    assert not np.array_equal(other.y_val, digits.y_val)
    everything = load(DigitsData(validation_split=0, normalize="none"), input_shape=(64,))
    assert len(everything.x_train) == 1797 and not everything.has_validation
    assert everything.x_val.shape == (0, 64) and everything.y_val.shape == (0,)
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(everything.y_train, load_digits().target)  # file order kept


def test_digits_errors():
    error = raises(
        r"shape \(64\) \(64 values\).*input shape is \[1, 28, 28\] \(784",
        DigitsData(),
        input_shape=(1, 28, 28),
    )
    assert error.hint == "set input: {shape: [64]} or reshape the data"
    error = raises(
        r"labels span 0\.\.9 but the network outputs 5 classes",
        DigitsData(),
        output_shape=(None, 5),
    )
    assert "10 classes" in error.hint
    raises(
        r"y samples have shape \(\) \(1 values\) but output targets need \(10\)",
        DigitsData(),
        loss=MSE,
    )


# -- npz ----------------------------------------------------------------------------------
def test_npz_round_trip_custom_keys_relative_path(tmp_path):
    x = np.arange(40 * 6, dtype=np.float64).reshape(40, 6)
    y = np.arange(40) % 3
    (tmp_path / "data").mkdir()
    npz(tmp_path / "data" / "set.npz", inputs=x.reshape(40, 2, 3), labels=y)
    spec = NpzData(path="data/set.npz", x_key="inputs", y_key="labels", validation_split=0.25)
    data = load(spec, input_shape=(2, 3), output_shape=(None, 3), spec_dir=tmp_path)
    assert data.x_train.shape == (30, 2, 3) and data.x_val.shape == (10, 2, 3)
    rows = np.concatenate([data.x_train, data.x_val]).reshape(40, 6)
    np.testing.assert_array_equal(np.sort(rows[:, 0]), x[:, 0])
    np.testing.assert_array_equal(data.y_train, (data.x_train[:, 0, 0] // 6).astype(int) % 3)
    assert data.name == f"npz:{tmp_path / 'data' / 'set.npz'}"
    absolute = NpzData(path=str(tmp_path / "data" / "set.npz"), x_key="inputs", y_key="labels")
    assert len(load(absolute, input_shape=(6,), output_shape=(None, 3)).x_train) == 32


def test_npz_channels_last_images_are_refused_not_scrambled(tmp_path):
    x = np.arange(6 * 4 * 5 * 3, dtype=np.float64).reshape(6, 4, 5, 3)  # NHWC
    npz(tmp_path / "d.npz", x=x, y=np.zeros(6, dtype=np.int64))
    error = raises(
        r"^npz:.*d\.npz: x samples have shape \(4, 5, 3\) but the spec's input shape is "
        r"\[3, 4, 5\]: netspec does not reorder values$",
        NpzData(path="d.npz"),
        input_shape=(3, 4, 5),
        spec_dir=tmp_path,
    )
    assert "\n" not in error.message
    assert error.hint == "channels-last images? store x.transpose(0, 3, 1, 2)"


@pytest.mark.parametrize(
    ("stored", "input_shape", "hint"),
    [
        (
            (6, 12),
            (3, 2, 2),
            "reshape them yourself if that is their layout: x.reshape(len(x), 3, 2, 2)",
        ),
        (
            (6, 4, 5),
            (5, 4),
            "reshape them yourself if that is their layout: x.reshape(len(x), 5, 4)",
        ),
        (
            (6, 2, 10),
            (1, 4, 5),
            "reshape them yourself if that is their layout: x.reshape(len(x), 1, 4, 5)",
        ),
    ],
)
def test_npz_samples_of_another_shape_are_refused(tmp_path, stored, input_shape, hint):
    npz(tmp_path / "d.npz", x=np.ones(stored), y=np.zeros(6, dtype=np.int64))
    error = raises(
        "netspec does not reorder values",
        NpzData(path="d.npz"),
        input_shape=input_shape,
        spec_dir=tmp_path,
    )
    assert error.hint == hint


@pytest.mark.parametrize(
    ("stored", "input_shape"),
    [
        ((6, 20), (20,)),  # flat data into a flat input
        ((6, 4, 5), (20,)),  # flattened as Flatten would
        ((6, 4, 5), (1, 4, 5)),  # a unit channel axis moves no value
        ((6, 4, 5, 1), (1, 4, 5)),  # channels-last with one channel is the same order
        ((6, 20), (1, 4, 5)),  # flat rows into one-channel images, row-major: (N, 784) MNIST
        ((6, 20), (4, 5)),
    ],
)
def test_npz_samples_that_only_need_flattening_or_unit_axes_load(tmp_path, stored, input_shape):
    x = np.arange(np.prod(stored), dtype=np.float64).reshape(stored)
    npz(tmp_path / "d.npz", x=x, y=np.zeros(6, dtype=np.int64))
    spec = NpzData(path="d.npz", validation_split=0, shuffle=False)
    data = load(spec, input_shape=input_shape, spec_dir=tmp_path, dtype="float64")
    np.testing.assert_array_equal(data.x_train, x.reshape(6, *input_shape))


def test_npz_relative_to_working_directory_without_spec_dir(tmp_path, monkeypatch):
    npz(tmp_path / "d.npz", x=np.ones((5, 2)), y=np.zeros(5, dtype=np.int64))
    monkeypatch.chdir(tmp_path)
    data = load(NpzData(path="d.npz", validation_split=0), input_shape=(2,), output_shape=(None, 2))
    assert len(data.x_train) == 5


def test_npz_separate_validation_file(tmp_path):
    rng = np.random.default_rng(0)
    npz(tmp_path / "train.npz", x=rng.normal(3, 2, (50, 4)), y=rng.integers(0, 4, 50))
    npz(tmp_path / "val.npz", x=rng.normal(3, 2, (7, 4)), y=rng.integers(0, 4, 7))
    spec = NpzData(path="train.npz", validation_path="val.npz", normalize="standardize")
    data = load(spec, input_shape=(4,), output_shape=(None, 4), spec_dir=tmp_path, dtype="float64")
    assert len(data.x_train) == 50 and len(data.x_val) == 7  # validation_split unused
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-12)
    with np.load(tmp_path / "train.npz") as f, np.load(tmp_path / "val.npz") as v:
        expected = (v["x"] - f["x"].mean(axis=0)) / f["x"].std(axis=0)
    np.testing.assert_allclose(data.x_val, expected, rtol=1e-12)


def test_npz_targets_per_loss(tmp_path):
    x = np.ones((6, 3), dtype=np.float32)
    npz(tmp_path / "r.npz", x=x, y=np.arange(6))  # int targets become floats for MSE
    spec = NpzData(path="r.npz", validation_split=0, shuffle=False)
    data = load(spec, input_shape=(3,), output_shape=(None, 1), loss=MSE, spec_dir=tmp_path)
    assert data.y_train.shape == (6, 1) and data.y_train.dtype == np.float32
    assert data.num_classes is None
    npz(tmp_path / "p.npz", x=x, y=np.full((6, 4), 0.25))  # class probabilities for CE
    spec = NpzData(path="p.npz", validation_split=0)
    data = load(spec, input_shape=(3,), output_shape=(None, 4), spec_dir=tmp_path)
    assert data.y_train.shape == (6, 4) and data.y_train.dtype == np.float32
    npz(tmp_path / "s.npz", x=x, y=np.zeros((6, 2, 2), dtype=np.int32))  # per-pixel classes
    spec = NpzData(path="s.npz", validation_split=0)
    data = load(spec, input_shape=(3,), output_shape=(None, 5, 2, 2), spec_dir=tmp_path)
    assert data.y_train.shape == (6, 2, 2) and data.y_train.dtype == np.int64


def test_npz_file_errors(tmp_path):
    error = raises(
        "npz file not found: .*missing.npz", NpzData(path="missing.npz"), spec_dir=tmp_path
    )
    assert "spec's folder" in error.hint
    npz(tmp_path / "keys.npz", a=np.ones(3), b=np.ones(3))
    error = raises(
        "has no array 'x'; it has: 'a', 'b'", NpzData(path="keys.npz"), spec_dir=tmp_path
    )
    assert "x_key" in error.hint
    raises(
        "has no array 'labels'",
        NpzData(path="keys.npz", x_key="a", y_key="labels"),
        spec_dir=tmp_path,
    )
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 definitely not a zip archive")
    raises("cannot read npz file .*bad.npz", NpzData(path="bad.npz"), spec_dir=tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"\x00garbage" * 10)
    raises("cannot read npz file", NpzData(path="junk.npz"), spec_dir=tmp_path)
    np.save(tmp_path / "one.npy", np.ones(3))
    raises("single array, not an .npz", NpzData(path="one.npy"), spec_dir=tmp_path)
    npz(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    raises("cannot read npz file .*obj.npz", NpzData(path="obj.npz"), spec_dir=tmp_path)
    (tmp_path / "folder.npz").mkdir()
    raises("npz file not found", NpzData(path="folder.npz"), spec_dir=tmp_path)


@pytest.mark.parametrize(
    ("arrays", "output_shape", "loss", "match"),
    [
        ({"x": np.ones((0, 4)), "y": np.zeros(0, int)}, (None, 2), CE, "x has no samples"),
        ({"x": np.float64(1.0), "y": np.zeros(1, int)}, (None, 2), CE, "x has no samples"),
        (
            {"x": np.ones((5, 4)), "y": np.zeros(4, int)},
            (None, 2),
            CE,
            "x has 5 samples but y has 4 samples",
        ),
        ({"x": np.ones((5, 4)), "y": np.int64(0)}, (None, 2), CE, "y has no sample dimension"),
        (
            {"x": np.ones((5, 3)), "y": np.zeros(5, int)},
            (None, 2),
            CE,
            r"x samples have shape \(3\) \(3 values\) but the spec's input shape is \[4\] \(4",
        ),
        (
            {"x": np.array([[np.nan] * 4] * 5), "y": np.zeros(5, int)},
            (None, 2),
            CE,
            "x has NaN or infinite values in 5 sample.*first at index 0",
        ),
        (
            {"x": np.ones((5, 4)), "y": np.array([0.0, 1, 1, np.inf, 0])},
            (None, 1),
            MSE,
            "y has NaN or infinite values in 1 sample.*index 3",
        ),
        (
            {"x": np.ones((5, 4)), "y": np.array([0.0, 1, 1, 0, 1])},
            (None, 2),
            CE,
            "CrossEntropyLoss needs integer class labels, received float64 labels",
        ),
        (
            {"x": np.ones((5, 4)), "y": np.array([0, 1, 2, 1, 0])},
            (None, 2),
            CE,
            r"labels span 0\.\.2 but the network outputs 2 classes .*labels in \[0, 2\)",
        ),
        (
            {"x": np.ones((5, 4)), "y": np.array([0, -1, 1, 1, 0])},
            (None, 2),
            CE,
            r"labels span -1\.\.1",
        ),
        (
            {"x": np.ones((5, 4)), "y": np.eye(5, 3, dtype=int)},
            (None, 3),
            CE,
            r"y samples have shape \(3\) but class labels for the output \(N, 3\) need \(\)",
        ),
        (
            {"x": np.array([["a"] * 4] * 5), "y": np.zeros(5, int)},
            (None, 2),
            CE,
            "x has dtype <U1; expected numbers",
        ),
        (
            {"x": np.ones((5, 4)), "y": np.array(["a"] * 5)},
            (None, 1),
            MSE,
            "y has dtype <U1; expected numbers",
        ),
        (
            {"x": np.ones((5, 4)), "y": np.ones((5, 2))},
            (None, 3),
            MSE,
            r"y samples have shape \(2\) \(2 values\) but output targets need \(3\)",
        ),
    ],
)
def test_npz_content_errors(tmp_path, arrays, output_shape, loss, match):
    npz(tmp_path / "d.npz", **arrays)
    raises(
        match,
        NpzData(path="d.npz"),
        input_shape=(4,),
        output_shape=output_shape,
        loss=loss,
        spec_dir=tmp_path,
    )


def test_values_overflowing_the_dtype_are_reported(tmp_path):
    npz(tmp_path / "d.npz", x=np.full((5, 4), 1e6), y=np.zeros(5, int))
    with pytest.warns(RuntimeWarning):  # NumPy's own overflow warning on the cast
        raises(
            "x has NaN or infinite values in 5 sample",
            NpzData(path="d.npz"),
            input_shape=(4,),
            output_shape=(None, 2),
            spec_dir=tmp_path,
            dtype="float16",
        )


def test_validation_split_leaving_empty_sets(tmp_path):
    npz(tmp_path / "one.npz", x=np.ones((1, 4)), y=np.zeros(1, int))
    error = raises(
        "validation_split 0.5 of 1 samples leaves no training samples",
        NpzData(path="one.npz", validation_split=0.5),
        input_shape=(4,),
        output_shape=(None, 2),
        spec_dir=tmp_path,
    )
    assert "validation_split" in error.hint
    # A separate validation file must hold samples too, of the same per-sample shape.
    npz(tmp_path / "empty.npz", x=np.ones((0, 4)), y=np.zeros(0, int))
    npz(tmp_path / "wide.npz", x=np.ones((3, 5)), y=np.zeros(3, int))
    for name, match in [("empty.npz", "empty.npz: x has no samples"), ("wide.npz", r"\(5 values")]:
        raises(
            match,
            NpzData(path="one.npz", validation_path=name),
            input_shape=(4,),
            output_shape=(None, 2),
            spec_dir=tmp_path,
        )


def test_ceil_split_tolerates_float_rounding(tmp_path):
    npz(tmp_path / "d.npz", x=np.ones((30, 1)), y=np.zeros(30, int))
    data = load(
        NpzData(path="d.npz", validation_split=0.1),
        input_shape=(1,),
        output_shape=(None, 1),
        spec_dir=tmp_path,
    )
    assert (len(data.x_train), len(data.x_val)) == (27, 3)


# -- synthetic ----------------------------------------------------------------------------
def test_synthetic_is_deterministic_per_seed():
    spec = SyntheticData(samples=64)
    first, again, other = load(spec), load(spec), load(spec, seed=5)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_val, again.y_val)
    assert not np.array_equal(first.x_train, other.x_train)
    short = load(SyntheticData(samples=64, validation_split=0), seed=5)
    longer = load(SyntheticData(samples=128, validation_split=0), seed=5)
    np.testing.assert_array_equal(longer.x_train[:64], short.x_train)  # same teacher, prefix
    np.testing.assert_array_equal(longer.y_train[:64], short.y_train)
    wide = load(spec, dtype="float64")
    np.testing.assert_allclose(wide.x_train, first.x_train, rtol=1e-6)  # same draws per dtype


def test_synthetic_classification_targets():
    data = load(SyntheticData(samples=400), input_shape=(3, 4, 4), output_shape=(None, 6))
    assert data.x_train.shape == (320, 3, 4, 4) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.y_train.shape == (320,)
    assert data.num_classes == 6 and len(np.unique(data.y_train)) >= 4
    assert data.y_train.min() >= 0 and data.y_train.max() < 6
    # Learnable: a least-squares linear classifier beats chance by far on held-out samples.
    x_train, x_val = data.x_train.reshape(320, -1), data.x_val.reshape(80, -1)
    w = np.linalg.lstsq(x_train, np.eye(6)[data.y_train], rcond=None)[0]
    assert (np.argmax(x_val @ w, axis=1) == data.y_val).mean() > 0.5


@pytest.mark.parametrize("loss", [MSE, L1])
def test_synthetic_regression_targets(loss):
    data = load(
        SyntheticData(samples=300),
        input_shape=(10,),
        output_shape=(None, 2, 3),
        loss=loss,
        dtype="float64",
    )
    assert data.y_train.shape == (240, 2, 3) and data.y_train.dtype == np.float64
    assert data.num_classes is None and 0.5 < data.y_train.std() < 2
    w = np.linalg.lstsq(data.x_train, data.y_train.reshape(240, 6), rcond=None)[0]
    np.testing.assert_allclose(data.x_val @ w, data.y_val.reshape(60, 6), atol=1e-8)


def test_synthetic_per_pixel_classes_and_negative_seed():
    data = load(
        SyntheticData(samples=20), input_shape=(2, 3, 3), output_shape=(None, 4, 3, 3), seed=-7
    )
    assert data.y_train.shape == (16, 3, 3) and data.y_train.max() < 4


def test_loader_argument_errors():
    raises("no data targets are defined for loss 'NLLLoss'", SyntheticData(), loss="NLLLoss")
    raises(
        r"CrossEntropyLoss needs an \(N, C\) output, but the network outputs \(N\)",
        SyntheticData(),
        output_shape=(None,),
    )
    raises("dtype 'bfloat16' is not supported by NumPy", SyntheticData(), dtype="bfloat16")
    raises("data dtype must be a float type, received int32", SyntheticData(), dtype="int32")


def test_a_plugin_dtype_is_refused_as_without_the_plugin():
    """onnx loads ml_dtypes, which registers bfloat16 with NumPy: the loader's answer must
    not depend on whether some other library was imported first."""
    pytest.importorskip("ml_dtypes")
    raises("dtype 'bfloat16' is not supported by NumPy", SyntheticData(), dtype="bfloat16")


# -- batching -----------------------------------------------------------------------------
def make_xy(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n)


@pytest.mark.parametrize(("drop_last", "sizes"), [(False, [32, 32, 32, 4]), (True, [32, 32, 32])])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batch_sizes(drop_last, sizes, shuffle):
    x, y = make_xy()
    rng = np.random.default_rng(0)
    batches = list(iterate_batches(x, y, 32, shuffle=shuffle, rng=rng, drop_last=drop_last))
    assert [len(yb) for _, yb in batches] == sizes == [len(xb) for xb, _ in batches]
    assert batch_count(100, 32, drop_last) == len(sizes)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)  # x and y rows stay paired


def test_every_sample_once_per_epoch_and_shuffle_determinism():
    x, y = make_xy(103)
    rng = np.random.default_rng(3)
    epochs = [
        np.concatenate([yb for _, yb in iterate_batches(x, y, 10, shuffle=True, rng=rng)])
        for _ in range(2)
    ]
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), y)
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh order each epoch
    same = np.random.default_rng(3)
    replay = np.concatenate([yb for _, yb in iterate_batches(x, y, 10, shuffle=True, rng=same)])
    np.testing.assert_array_equal(replay, epochs[0])
    other = np.random.default_rng(4)
    different = [yb for _, yb in iterate_batches(x, y, 10, shuffle=True, rng=other)]
    assert not np.array_equal(np.concatenate(different), epochs[0])


def test_unshuffled_batches_keep_order_as_views():
    x, y = make_xy(10)
    batches = list(iterate_batches(x, y, 4, shuffle=False, rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), y)
    assert all(np.shares_memory(xb, x) for xb, _ in batches)


def test_batch_edge_cases():
    x, y = make_xy(5)
    rng = np.random.default_rng(0)
    assert [len(b) for _, b in iterate_batches(x, y, 64, shuffle=True, rng=rng)] == [5]
    assert list(iterate_batches(x, y, 64, shuffle=True, rng=rng, drop_last=True)) == []
    assert list(iterate_batches(x[:0], y[:0], 4, shuffle=True, rng=rng)) == []
    assert batch_count(5, 64) == 1 and batch_count(0, 4) == 0
    with pytest.raises(DataError, match="batch_size must be positive, received 0"):
        next(iterate_batches(x, y, 0, shuffle=False, rng=rng))


def test_npz_declaring_more_than_it_holds_is_refused_before_reading(tmp_path, monkeypatch):
    import struct
    import zipfile

    from netspec.data import npz_reader as npz_module

    path = tmp_path / "d.npz"
    with open(path, "wb") as file:
        np.savez_compressed(file, x=np.zeros((8, 4)), y=np.zeros(8, dtype=np.int64))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("x.npy")
        central = archive.start_dir
    struct.pack_into("<I", data, info.header_offset + 22, 4_000_000_000)  # local: 4 GB
    struct.pack_into("<I", data, central + 24, 4_000_000_000)  # central entry of x.npy
    path.write_bytes(bytes(data))
    reads = []
    monkeypatch.setattr(npz_module.NpzReader, "read", lambda *a: reads.append(a) or None)
    with pytest.raises(DataError, match="cannot read npz file .*declares 4000000000 bytes"):
        load(NpzData(path="d.npz"), input_shape=(4,), output_shape=(None, 2), spec_dir=tmp_path)
    assert reads == []
    with open(path, "wb") as file:
        np.savez(file, x=np.zeros((8, 5)), y=np.zeros(8, dtype=np.int64))
    with pytest.raises(DataError, match=r"x samples have shape \(5\)"):
        load(NpzData(path="d.npz"), input_shape=(4,), output_shape=(None, 2), spec_dir=tmp_path)
    assert reads == []  # the per-sample size is refused from the header alone
