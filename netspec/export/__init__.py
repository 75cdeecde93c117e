"""Models out of netspec: files other tools read (ONNX, safetensors weights, PyTorch code,
a picture of the graph); formats.export_model is the one entry point of `netspec export`.

Each format's third-party package is an extra (`pip install 'netspec[export]'`), imported
only inside the function that writes it, so importing netspec never needs them."""
