"""Models out of netspec: files other tools read (a picture of the graph, so far).

Each format's third-party package is an extra (`pip install 'netspec[export]'`), imported
only inside the function that writes it, so importing netspec never needs them."""
