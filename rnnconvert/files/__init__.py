"""How rnnconvert touches files and the process, whoever made the files.

Owns: `safety` (guards applied to a file from a stranger before it is trusted: HDF5, zip, ONNX external
data, .npy), `text` (YAML and JSON from a stranger), `outputs` (the output policy: which paths a run may
write and read), `atomic` (writing and installing outputs without writing through what is at a path),
`interrupt` (signals end a run like an error does), `scratch` (running programs on generated code),
`hdf5_headers` (variable-length attribute values read from the object headers before libhdf5 reads them).
May import: `rnnconvert.errors` only.  Everything above uses it.
"""
