"""Specs with nesting (blocks, Sequential, `$param`, `repeat`, dotted names) that netspec
accepts: the schema must accept them (tests/test_schema.py) and the editor show no problem
in them (tests/test_editor.py)."""

from __future__ import annotations

NESTED: dict[str, str] = {
    # design.md 1.2's BasicBlock, used twice with repeat
    "resnet block": (
        "name: tiny\n"
        "input: {shape: [3, 32, 32]}\n"
        "blocks:\n"
        "  BasicBlock:\n"
        "    params: [planes, stride: 1]\n"
        "    layers:\n"
        "      - {type: Conv2d, name: conv1, in_channels: $planes, out_channels: $planes, kernel_size: 3, stride: $stride, padding: 1, bias: false}\n"
        "      - {type: BatchNorm2d, name: bn1, num_features: $planes}\n"
        "      - {type: ReLU, name: relu}\n"
        "      - {type: Conv2d, name: conv2, in_channels: $planes, out_channels: $planes, kernel_size: 3, padding: 1, bias: false}\n"
        "      - {type: BatchNorm2d, name: bn2, num_features: $planes}\n"
        "      - {type: Add, name: add, inputs: [bn2, input]}\n"
        "      - {type: ReLU, name: out}\n"
        "layers:\n"
        "  - {type: Sequential, name: stem, layers: [Conv2d: {in_channels: 3, out_channels: 8, kernel_size: 3, padding: 1}, ReLU]}\n"
        "  - {type: BasicBlock, name: layer1, planes: 8, repeat: 2}\n"
        "  - AdaptiveAvgPool2d: {output_size: 1}\n"
        "  - Flatten\n"
        "  - {type: Linear, name: fc, in_features: 8, out_features: 10}\n"
        "loss: CrossEntropyLoss\n"
    ),
    # every form of a block use and of Sequential, defaults, list items that are params,
    # a block using a block, outputs and inputs inside a block, dotted names outside
    "every form": (
        "input: {shape: [3, 8, 8]}\n"
        "blocks:\n"
        "  Down:\n"
        "    params: [planes, cin: 4, k: 3, stride: 2, bias: false]\n"
        "    layers:\n"
        "      - Conv2d: {in_channels: $cin, out_channels: $planes, kernel_size: [$k, 1], stride: $stride, padding: [1, 0], bias: $bias}\n"
        "      - {type: ReLU, name: relu, inplace: false}\n"
        "      - {type: Sequential, name: tail, layers: [{Conv2d: {in_channels: $planes, out_channels: $planes, kernel_size: 1}, name: convs, repeat: 2}]}\n"
        "    outputs: [tail]\n"
        "  Wrap:\n"
        "    params: [p]\n"
        "    layers:\n"
        "      - {type: Down, planes: $p}\n"
        "      - Down: {planes: $p, stride: 2}\n"
        "        name: second\n"
        "        inputs: [input]\n"
        "      - {type: Add, name: sum, inputs: [0, second]}\n"
        "layers:\n"
        "  - Down: {planes: 4, cin: 3}\n"
        "    name: layer1\n"
        "  - {type: Sequential, name: layer2, layers: [Wrap: {p: 4}, {type: Down, name: more, planes: 4, repeat: 2, stride: 1}]}\n"
        "  - Flatten\n"
        "  - {type: Linear, name: fc.out, in_features: 16, out_features: 2}\n"
        "outputs: [fc.out]\n"
    ),
    "sequential forms without blocks": (
        "input: {shape: [3, 8, 8]}\n"
        "layers:\n"
        "  - Sequential: {layers: [ReLU, {type: Tanh, name: t}], outputs: [t]}\n"
        "    name: features\n"
        "  - {type: Sequential, layers: [{Conv2d: {in_channels: 3, out_channels: 3, "
        "kernel_size: 1}, name: c, repeat: 2}]}\n"
        "  - {type: ReLU, repeat: 3}\n"
        "  - {ReLU: null, name: relu.last, repeat: 2, inputs: [features]}\n"
        "  - {type: Add, name: head.sum, inputs: [relu.last, features.t]}\n"
    ),
    "empty optional block keys": (
        "input: {shape: [4]}\n"
        "blocks:\n"
        "  Act: {params: null, layers: [ReLU], outputs: null}\n"
        "  Scaled:\n"
        "    params: [slope: 0.1]\n"
        "    layers: [LeakyReLU: {negative_slope: $slope}]\n"
        "layers: [Act, {Act: null}, {type: Scaled, slope: 0.2}, Scaled]\n"
    ),
    "blocks null": "input: {shape: [4]}\nblocks: null\nlayers: [ReLU]\n",
}
