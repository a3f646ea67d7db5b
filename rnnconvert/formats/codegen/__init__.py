"""Code generation: the canonical model as standalone source code (C99, an ES module, a NumPy script).

These formats are written, never read: `c`, `js` and `numpy_script` each offer `write` and `run`
(the generated code compiled or interpreted by gcc, node or python on given inputs, for verification,
through `rnnconvert.files.scratch`).  Text from a file (names) enters generated code only through `literals`,
which the PyTorch module emitter and Octave's command line use too.
"""
