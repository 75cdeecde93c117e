"""The front end: YAML text -> a checked Spec with its analysed Graph, without array code.

source.py     YAML 1.2 with positions          normalize.py  the three layer forms
validate.py   pydantic errors -> diagnostics   spec.py       the Spec and its sections
graph.py      names, inputs, order, shapes     lint.py       warnings on legal specs
load.py       load()/loads(): all of the above shape_report.py  infer(): torchinfo's table
json_schema.py  the editor's schema            training_memory.py  the memory estimate
"""
