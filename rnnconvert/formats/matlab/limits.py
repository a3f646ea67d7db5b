"""What every MAT-file reader here holds a stranger's file to, and walks it by: the bounds on nesting
(MAX_DEPTH) and on cell and struct-array elements (MAX_ELEMENTS), shared by the v5 scan (`v5scan`),
the v7.3 reader (`hdf5`) and the object decoder (`mcos`); and MATLAB's column-major element order.
"""
from __future__ import annotations

import numpy as np

MAX_DEPTH = 64       # cells/structs nested deeper than any network (MATLAB's own networks: about 10)
MAX_ELEMENTS = 1 << 17   # cell and struct-array elements per file (networks: under 100): each a Python object


def _fortran_indices(shape):
    return [np.unravel_index(k, shape, order="F") for k in range(int(np.prod(shape)))]
