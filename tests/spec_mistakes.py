"""Small specs with one mistake each, which `netspec check` refuses: the editor's schema must
flag every one in MISTAKES (tests/test_editor.py asks the real yaml-language-server,
tests/test_schema.py a small validator). BEYOND_A_SCHEMA lists those a JSON Schema cannot
state, each with the reason; netspec still refuses them."""

from __future__ import annotations

IMAGE = "input: {shape: [3, 8, 8]}\nlayers:\n"
FLAT = "input: {shape: [8]}\nlayers:\n  - Linear: {in_features: 8, out_features: 4}\n"


def layer(text: str) -> str:
    return IMAGE + f"  - {text}\n"


def conv(args: str) -> str:
    return layer(f"Conv2d: {{in_channels: 3, out_channels: 4, kernel_size: 3, {args}}}")


def block(body: str, use: str = "B") -> str:
    """A spec defining block B (its body in flow style) and using it once."""
    return "input: {shape: [3, 8, 8]}\nblocks:\n  B: " + body + "\nlayers:\n  - " + use + "\n"


def train(text: str) -> str:
    return FLAT + "loss: MSELoss\ntrain: " + text + "\n"


MISTAKES: dict[str, str] = {
    # Conv2d
    # YAML 1.1 spellings: strings in YAML 1.2, as the editor and netspec read them
    "relu inplace yes": layer("ReLU: {inplace: yes}"),
    "maxpool ceil_mode on": layer("MaxPool2d: {kernel_size: 2, ceil_mode: on}"),
    "batchnorm affine No": layer("BatchNorm2d: {num_features: 3, affine: No}"),
    "conv stride 0": conv("stride: 0"),
    "conv stride [1, 0]": conv("stride: [1, 0]"),
    "conv kernel_size 0": layer("Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 0}"),
    "conv kernel_size [0, 3]": layer(
        "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: [0, 3]}"
    ),
    "conv negative padding": conv("padding: -1"),
    "conv negative padding pair": conv("padding: [1, -1]"),
    "conv dilation 0": conv("dilation: 0"),
    "conv groups 0": conv("groups: 0"),
    "conv out_channels 0": layer("Conv2d: {in_channels: 3, out_channels: 0, kernel_size: 3}"),
    "conv in_channels 0": layer("Conv2d: {in_channels: 0, out_channels: 4, kernel_size: 3}"),
    "conv padding same with a stride": conv("padding: same, stride: 2"),
    "conv unknown padding string": conv("padding: full"),
    "conv unknown padding_mode": conv("padding_mode: mirror"),
    "conv kernel_size of three": layer(
        "Conv2d: {in_channels: 3, out_channels: 4, kernel_size: [3, 3, 3]}"
    ),
    "conv kernel_size true": layer("Conv2d: {in_channels: 3, out_channels: 4, kernel_size: true}"),
    "conv kernel_size '3'": layer("Conv2d: {in_channels: 3, out_channels: 4, kernel_size: '3'}"),
    "conv missing kernel_size": layer("Conv2d: {in_channels: 3, out_channels: 4}"),
    "conv bare": layer("Conv2d"),
    "conv unknown argument": conv("kernel: 3"),
    # pooling
    "maxpool kernel_size 0": layer("MaxPool2d: {kernel_size: 0}"),
    "maxpool stride 0": layer("MaxPool2d: {kernel_size: 2, stride: 0}"),
    "maxpool negative padding": layer("MaxPool2d: {kernel_size: 2, padding: -1}"),
    "maxpool dilation 0": layer("MaxPool2d: {kernel_size: 2, dilation: 0}"),
    "avgpool kernel_size 0": layer("AvgPool2d: {kernel_size: 0}"),
    "avgpool stride [0, 1]": layer("AvgPool2d: {kernel_size: 2, stride: [0, 1]}"),
    "avgpool negative padding": layer("AvgPool2d: {kernel_size: 2, padding: -1}"),
    "avgpool divisor_override 0": layer("AvgPool2d: {kernel_size: 2, divisor_override: 0}"),
    "adaptive output_size -1": layer("AdaptiveAvgPool2d: {output_size: -1}"),
    "adaptive output_size [2, -1]": layer("AdaptiveMaxPool2d: {output_size: [2, -1]}"),
    "adaptive output_size null": layer("AdaptiveAvgPool2d: {output_size: null}"),
    # normalisation, dropout, activations
    "batchnorm num_features -8": layer("BatchNorm2d: {num_features: -8}"),
    "batchnorm num_features 0": layer("BatchNorm2d: {num_features: 0}"),
    "batchnorm eps -1": layer("BatchNorm2d: {num_features: 3, eps: -1}"),
    "batchnorm eps 0": layer("BatchNorm2d: {num_features: 3, eps: 0}"),
    "dropout p 1.5": layer("Dropout: {p: 1.5}"),
    "dropout p -0.1": layer("Dropout: {p: -0.1}"),
    "dropout2d p 2": layer("Dropout2d: {p: 2}"),
    "gelu approximate": layer("GELU: {approximate: fast}"),
    "linear negative out_features": FLAT.replace("out_features: 4", "out_features: -4"),
    # layer types and forms
    "misspelt layer Conv2D": layer("Conv2D: {in_channels: 3, out_channels: 4, kernel_size: 3}"),
    "misspelt bare layer": layer("Relu"),
    "misspelt typed layer": layer("{type: Relu}"),
    "two layer types in one entry": layer("{ReLU: null, Tanh: null}"),
    "a layer with only a name": layer("{name: r}"),
    "a layer that is a number": layer("3"),
    "unknown argument typed": layer("{type: ReLU, inplce: true}"),
    # names
    "layer name with an empty segment": layer("{type: ReLU, name: a..b}"),
    "layer name with a space": layer("{type: ReLU, name: conv 1}"),
    "layer name empty": layer("{type: ReLU, name: ''}"),
    "layer name blank": layer("{type: ReLU, name: ' '}"),
    "layer name curly quotes": layer("{type: ReLU, name: \u201cconv\u201d}"),
    "layer name one-key form": layer("{ReLU: null, name: a-b}"),
    "inputs naming no possible layer": layer("{type: ReLU, inputs: [conv 1]}"),
    "outputs naming no possible layer": IMAGE + "  - ReLU\noutputs: ['0 values']\n",
    "inputs with a negative index": layer("{type: ReLU, inputs: [-1]}"),
    "spec name with a space": "name: my model\n" + IMAGE + "  - ReLU\n",
    # losses
    "label_smoothing 1.5": FLAT + "loss: {CrossEntropyLoss: {label_smoothing: 1.5}}\n",
    "label_smoothing -0.5": FLAT + "loss: {type: CrossEntropyLoss, label_smoothing: -0.5}\n",
    "unknown reduction": FLAT + "loss: {MSELoss: {reduction: average}}\n",
    "misspelt loss": FLAT + "loss: MSELos\n",
    "loss null": FLAT + "loss: null\n",
    # optimizers
    "sgd negative lr": train("{optimizer: {SGD: {lr: -0.1}}}"),
    "adam negative lr": train("{optimizer: {Adam: {lr: -1.0e-3}}}"),
    "adamw negative lr": train("{optimizer: {type: AdamW, lr: -1}}"),
    "sgd momentum -0.5": train("{optimizer: {SGD: {momentum: -0.5}}}"),
    "sgd negative weight_decay": train("{optimizer: {SGD: {weight_decay: -1}}}"),
    "sgd nesterov without momentum": train("{optimizer: {SGD: {nesterov: true}}}"),
    "sgd nesterov with dampening": train(
        "{optimizer: {SGD: {nesterov: true, momentum: 0.9, dampening: 0.1}}}"
    ),
    "adam beta 1.0": train("{optimizer: {Adam: {betas: [0.9, 1.0]}}}"),
    "adam beta -0.1": train("{optimizer: {Adam: {betas: [-0.1, 0.999]}}}"),
    "adam one beta": train("{optimizer: {Adam: {betas: [0.9]}}}"),
    "adam eps -1": train("{optimizer: {Adam: {eps: -1}}}"),
    "adamw negative weight_decay": train("{optimizer: {AdamW: {weight_decay: -0.01}}}"),
    "adam fused and differentiable": train(
        "{optimizer: {Adam: {fused: true, differentiable: true}}}"
    ),
    "sgd fused and foreach": train("{optimizer: {SGD: {fused: true, foreach: true}}}"),
    "misspelt optimizer": train("{optimizer: Adamw}"),
    # schedules
    "step_size 0": train("{lr_schedule: {StepLR: {step_size: 0}}}"),
    "T_max 0": train("{lr_schedule: {CosineAnnealingLR: {T_max: 0}}}"),
    "plateau factor 1.5": train("{lr_schedule: {ReduceLROnPlateau: {factor: 1.5}}}"),
    "plateau two min_lrs": train("{lr_schedule: {ReduceLROnPlateau: {min_lr: [0.0, 0.1]}}}"),
    "plateau unknown mode": train("{lr_schedule: {ReduceLROnPlateau: {mode: lowest}}}"),
    "misspelt schedule StepLr": train("{lr_schedule: {StepLr: {step_size: 1}}}"),
    "misspelt bare schedule": train("{lr_schedule: CosineAnnealing}"),
    "StepLR bare": train("{lr_schedule: StepLR}"),
    # train, input, data
    "seed -1": train("{seed: -1}"),
    "epochs 0": train("{epochs: 0}"),
    "batch_size 0": train("{batch_size: 0}"),
    "early_stopping negative patience": train("{early_stopping: {patience: -1}}"),
    "early_stopping unknown monitor": train("{early_stopping: {monitor: val_acc}}"),
    "input shape with 0": "input: {shape: [3, 0, 8]}\nlayers: [ReLU]\n",
    "input shape empty": "input: {shape: []}\nlayers: [ReLU]\n",
    "input dtype": "input: {shape: [8], dtype: int8}\nlayers: [ReLU]\n",
    "layers empty": "input: {shape: [8]}\nlayers: []\n",
    "validation_split 1.0": FLAT + "data: {source: synthetic, validation_split: 1.0}\n",
    "synthetic samples 0": FLAT + "data: {source: synthetic, samples: 0}\n",
    "npz without path": FLAT + "data: {source: npz}\n",
    "npz empty x_key": FLAT + "data: {source: npz, path: d.npz, x_key: ''}\n",
    "misspelt data source": FLAT + "data: {source: digit}\n",
    "data unknown argument": FLAT + "data: {source: digits, split: 0.1}\n",
    "unknown top-level key": FLAT + "optimizer: SGD\n",
    # Sequential and repeat
    "sequential without layers": layer("{type: Sequential, name: s}"),
    "sequential bare": layer("Sequential"),
    "sequential empty layers": layer("Sequential: {layers: []}"),
    "sequential unknown key": layer("{type: Sequential, layers: [ReLU], stride: 2}"),
    "sequential two inputs": IMAGE + "  - ReLU\n  - {type: Sequential, inputs: [input, 0], "
    "layers: [ReLU]}\n",
    "sequential misspelt inner layer": layer("{type: Sequential, layers: [Relu]}"),
    "sequential inner layer argument": layer("Sequential: {layers: [MaxPool2d: {kernel_size: 0}]}"),
    "repeat 0": layer("{type: ReLU, repeat: 0}"),
    "repeat 1.5": layer("{ReLU: null, repeat: 1.5}"),
    "repeat true": layer("{type: ReLU, repeat: true}"),
    "repeat '2'": layer("{type: Sequential, layers: [ReLU], repeat: '2'}"),
    "repeat 0 in the arguments": layer("ReLU: {repeat: 0}"),
    "repeat alone": layer("{repeat: 2}"),
    "param outside a block": layer("Conv2d: {in_channels: 3, out_channels: $c, kernel_size: 3}"),
    # blocks
    "block unknown key": block("{params: [a], layers: [ReLU], layer: [Tanh]}"),
    "block without layers": block("{params: []}"),
    "block empty layers": block("{layers: []}"),
    "block null": block("null"),
    "block named like a layer type": block("{layers: [Tanh]}", "ReLU").replace("B:", "ReLU:"),
    "block named Sequential": block("{layers: [Tanh]}").replace("B:", "Sequential:"),
    "block name not an identifier": block("{layers: [Tanh]}", "my-block").replace(
        "B:", "my-block:"
    ),
    "block two outputs": block(
        "{layers: [{type: ReLU, name: a}, {type: Tanh, name: b}], outputs: [a, b]}"
    ),
    "block params not a list": block("{params: planes, layers: [ReLU]}"),
    "block param a number": block("{params: [1], layers: [ReLU]}"),
    "block param named name": block("{params: [name], layers: [ReLU]}"),
    "block param repeat with a default": block("{params: [repeat: 2], layers: [ReLU]}"),
    "block param declared twice": block("{params: [a, a], layers: [ReLU]}", "{B: {a: 1}}"),
    "block param of two keys": block("{params: [{a: 1, b: 2}], layers: [ReLU]}"),
    "block layer value not a param": block(
        "{params: [k], layers: [MaxPool2d: {kernel_size: k}]}", "{B: {k: 2}}"
    ),
    "block layer value out of bounds": block(
        "{params: [k], layers: [MaxPool2d: {kernel_size: $k, stride: 0}]}", "{B: {k: 2}}"
    ),
    "block layer unknown argument": block("{layers: [{type: ReLU, inplce: $x}]}"),
    "block use with two inputs": block("{layers: [ReLU]}", "{type: B, inputs: [input, input]}"),
    "block use repeat 0": block("{layers: [ReLU]}", "{B: null, repeat: 0}"),
    "block use name with a space": block("{layers: [ReLU]}", "{type: B, name: my block}"),
    "block use a number": block("{layers: [ReLU]}", "3"),
    "block use arguments a list": block("{layers: [ReLU]}", "{B: [1]}"),
    "known layer beside blocks": block("{layers: [ReLU]}", "MaxPool2d: {kernel_size: 0}"),
}

# netspec refuses these; a JSON Schema cannot say so.
BEYOND_A_SCHEMA: dict[str, tuple[str, str]] = {
    "kernel_size 5.0": (
        layer("Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 5.0}"),
        "JSON Schema's integer is any number with a zero fraction: 5.0 is one",
    ),
    "adam lr .nan": (
        train("{optimizer: {Adam: {lr: .nan}}}"),
        "NaN compares false with every bound, so `minimum` lets it through",
    ),
    "groups not dividing in_channels": (
        conv("groups: 2"),
        "divisibility between two arguments",
    ),
    "pooling padding over half the kernel": (
        layer("MaxPool2d: {kernel_size: 2, padding: 2}"),
        "a bound that depends on another argument's value",
    ),
    "in_features mismatch": (
        FLAT.replace("in_features: 8", "in_features: 9"),
        "shapes come from the layers before",
    ),
    "kernel larger than the input": (
        layer("Conv2d: {in_channels: 3, out_channels: 4, kernel_size: 9}"),
        "shapes come from the layers before",
    ),
    "dangling input": (
        IMAGE + "  - {type: ReLU, inputs: [nowhere]}\n",
        "names are defined elsewhere in the document",
    ),
    "duplicate names": (
        IMAGE + "  - {type: ReLU, name: a}\n  - {type: Tanh, name: a}\n",
        "uniqueness across list items",
    ),
    "misspelt layer in a spec with blocks": (
        block("{layers: [ReLU]}", "Relu"),
        "a block's name is the document's own: any other name may be one of its blocks",
    ),
    "misspelt layer in a block": (
        block("{layers: [Relu]}"),
        "a block's name is the document's own: any other name may be one of its blocks",
    ),
    "unknown block param": (
        block("{params: [a], layers: [ReLU]}", "{B: {a: 1, b: 2}}"),
        "a use's arguments depend on the definition's params, elsewhere in the document",
    ),
    "missing block param": (
        block("{params: [a], layers: [ReLU]}", "B"),
        "a use's arguments depend on the definition's params, elsewhere in the document",
    ),
    "param the block does not declare": (
        block("{params: [a], layers: [MaxPool2d: {kernel_size: $k}]}", "{B: {a: 1}}"),
        "the params are declared elsewhere in the definition",
    ),
    "param given a value of the wrong type": (
        block("{params: [k], layers: [MaxPool2d: {kernel_size: $k}]}", "{B: {k: two}}"),
        "the argument's type is known only once substituted",
    ),
    "block used in itself": (
        block("{layers: [ReLU, B]}"),
        "a cycle of uses across definitions",
    ),
    "sequential output naming nothing": (
        layer("{type: Sequential, layers: [ReLU], outputs: [nowhere]}") + "  - Tanh\n",
        "names are defined elsewhere in the document",
    ),
    "same param name twice, once with a default": (
        block("{params: [a, a: 1], layers: [ReLU]}"),
        "uniqueness across differently written list items",
    ),
}
