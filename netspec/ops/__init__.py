"""The numerics over NumPy and CuPy (`xp`), one module a concept: the array backend (device,
dtype, allocator), padding, memory layouts, im2col and col2im, pooling windows and adaptive
bins, the conv and norm kernels, erf. Layers import these lazily, so the front end never
loads an array library; the shape formulas they share with the front end are in types.py."""
