"""The numerics over NumPy and CuPy (`xp`): the array backend, padding, layouts, im2col,
sliding windows. Layers import these lazily, so the front end never loads an array library."""
