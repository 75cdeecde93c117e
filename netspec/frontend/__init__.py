"""The front end: YAML text -> a checked Spec with its analysed Graph, without array code.

source.py       YAML 1.2 with positions        blocks.py     `blocks:` definitions
expand.py       nesting -> flat layers         normalize.py  the three layer forms
validate.py     pydantic errors -> diagnostics spec.py       the Spec and its sections
graph.py        names, inputs, order, shapes   lint.py       warnings on legal specs
load.py         load()/loads(): all of these   shape_report.py  infer(): torchinfo's table
flat_spec.py    `netspec expand`               training_memory.py  the memory estimate
json_schema*.py the editor's schema
"""
