"""The engine: tensors in, tensors out. No PIL, no paths, no printing, no global state.

Nothing in this package imports from the rest of impasto (a test checks it).
"""
