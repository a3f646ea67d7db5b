"""The reference forward pass: the canonical model computed with numpy (float64 by default), the oracle
every conversion is verified against.

Owns: `network` (the pass over a model's layers, its equations in the docstring), `recurrent` (a
recurrent layer's directions, what it returns, its checks), `cells` (the GRU and RNN time loops and what
the cells share), `lstm` (the LSTM's, with its float32 fast path),
`layers` (front-end layers and masks), `activations`, `blas` (the BLAS thread count and kernel),
`products` (the cells' recurrent matmul in the form the BLAS runs fastest), `hybrid` (LiteRT's int8
hybrid arithmetic, for layers whose `hybrid` setting says they run it).
May import: `rnnconvert.model`, `rnnconvert.errors`.  Formats and verification import it; it imports
no format.
"""
from .network import forward, forward_with_feeds, forward_with_states

__all__ = ["forward", "forward_with_feeds", "forward_with_states"]
