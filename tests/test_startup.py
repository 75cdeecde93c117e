"""What `netspec check` and `netspec --help` load, so that they keep starting fast (issue 13;
benchmarks/startup.py times them). Not timed: each command runs in a fresh interpreter and
the test reads what it imported and built, which does not vary with the machine's load.

- `check` loads neither NumPy nor the kernels (netspec.ops.*) nor the runtime;
- `check` builds the validators of the schemas its spec names, not of every schema, and
  reads no field docstrings (they are for the JSON Schema and for `model_fields`);
- `--help` loads no pydantic, YAML, vocabulary or front end at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

ROOT = Path(__file__).resolve().parent.parent
LENET = ROOT / "specs" / "lenet5.yaml"

# Runs the console script's main() with `argv`, then writes what the process holds.
RUNNER = textwrap.dedent(
    """
    import json, sys
    argv, report = sys.argv[1:-1], sys.argv[-1]
    sys.argv = ["netspec", *argv]
    from netspec.cli import main
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    from netspec.lazy import is_loaded
    modules = sorted(n for n, m in sys.modules.items() if m and is_loaded(m))

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    schema = sys.modules.get("netspec.schema")  # not imported here: --help must not load it
    classes = set(subclasses(schema.Schema)) if schema else set()
    with open(report, "w") as out:
        json.dump({
            "code": code,
            "modules": modules,
            "built": sorted(c.__name__ for c in classes if c.__pydantic_complete__),
            "described": sorted(
                c.__name__ for c in classes
                if any(f.description for f in c.__pydantic_fields__.values())
            ),
        }, out)
    """
)


def run_cli(tmp_path: Path, *argv: str) -> dict:
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-c", RUNNER, *argv, str(report)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert report.exists(), run.stderr
    return json.loads(report.read_text())


def loaded(report: dict, *prefixes: str) -> list[str]:
    return [m for m in report["modules"] if m == prefixes[0] or m.startswith(prefixes)]


@pytest.fixture(scope="module")
def check_report(tmp_path_factory) -> dict:
    report = run_cli(tmp_path_factory.mktemp("check"), "check", str(LENET))
    assert report["code"] == 0
    return report


def test_check_loads_no_array_code_nor_the_runtime(check_report):
    assert loaded(check_report, "numpy", "numpy.") == []
    assert loaded(check_report, "netspec.ops.") == []
    assert loaded(check_report, "netspec.network", "netspec.training.bench") == []
    assert loaded(check_report, "netspec.training.trainer", "netspec.export.") == []


def test_check_loads_neither_the_json_schema_builder_nor_typers_help(check_report):
    assert loaded(check_report, "netspec.frontend.json_schema_nesting") == []
    assert loaded(check_report, "typer.rich_utils", "markdown_it.") == []


def test_check_builds_only_the_schemas_its_spec_names(check_report):
    assert check_report["built"] == sorted(
        [
            *("Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "Dropout"),  # its layers
            *("CrossEntropyLoss", "SGD", "CosineAnnealingLR", "SyntheticData"),  # entries
            "Spec",  # with its sections (input, train, early_stopping) inside
        ]
    )


def test_check_reads_no_field_docstrings(check_report):
    assert check_report["described"] == []


def test_help_loads_no_pydantic_yaml_nor_vocabulary(tmp_path):
    report = run_cli(tmp_path, "--help")
    assert report["code"] == 0
    assert loaded(report, "pydantic", "pydantic.", "pydantic_core") == []
    assert loaded(report, "yaml", "yaml.", "numpy", "numpy.") == []
    assert loaded(report, "netspec.layers", "netspec.frontend.load", "netspec.schema") == []


# -- the levers keep their promises ------------------------------------------------------------
def test_field_descriptions_are_what_pydantic_reads_from_the_docstrings():
    docs = pytest.importorskip("pydantic._internal._docs_extraction")
    from netspec.frontend.spec import Spec  # noqa: F401 - every schema class is defined
    from netspec.schema import Schema

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    classes = sorted(set(subclasses(Schema)), key=lambda c: c.__qualname__)
    assert len(classes) > 40
    for cls in classes:
        for name, field in cls.model_fields.items():
            owner = next(k for k in cls.__mro__ if name in vars(k).get("__annotations__", {}))
            expected = docs.extract_docstrings_from_cls(owner, use_inspect=True).get(name)
            assert field.description == expected, f"{cls.__name__}.{name}"


def test_a_schema_built_before_its_docstrings_were_read_still_describes_its_fields():
    from netspec.layers import GELU
    from netspec.schema import describe_all

    GELU.model_validate({"type": "GELU"})  # built; its fields not described yet
    describe_all()
    schema = GELU.model_json_schema()["properties"]["approximate"]
    assert schema["description"] == GELU.model_fields["approximate"].description


def test_a_spec_validated_from_python_dispatches_on_type_and_reports_like_the_union():
    from netspec.frontend.spec import Spec
    from netspec.layers import AnyLayer, Linear

    base = {"input": {"shape": [4]}}
    spec = Spec.model_validate({**base, "layers": [{"type": "Linear", "out_features": 3}]})
    assert isinstance(spec.layers[0], Linear)
    with pytest.raises(ValidationError) as bad_argument:
        Spec.model_validate({**base, "layers": [{"type": "Linear", "out_features": "x"}]})
    assert [e["loc"] for e in bad_argument.value.errors()] == [("layers", 0, "out_features")]
    unknown = {"type": "Linearr"}
    with pytest.raises(ValidationError) as through_spec:
        Spec.model_validate({**base, "layers": [unknown]})
    with pytest.raises(ValidationError) as through_union:
        TypeAdapter(AnyLayer).validate_python(unknown)
    ours = through_spec.value.errors(include_url=False)
    assert [(e["type"], e["loc"][2:]) for e in ours] == [
        (e["type"], e["loc"]) for e in through_union.value.errors(include_url=False)
    ]
    assert isinstance(spec, BaseModel)
