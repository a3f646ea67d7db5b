"""PyTorch state dicts: .pt/.pth (torch.save) and .safetensors, of nn.LSTM/nn.GRU/nn.RNN/nn.Linear.

Layout: the canonical one (`weight_ih_l{k}` = W [G*H, in], `weight_hh_l{k}` = R, `bias_ih` = Wb,
`bias_hh` = Rb, `weight_hr_l{k}` = proj, gates ifgo / rzn, `_reverse` suffix for the backward
direction; nn.Linear `weight` = kernel.T).  What is odd: a state dict holds weights only, so the
head, layout, nn.RNN nonlinearity and module order come from architecture hints (`arch.py`:
defaults batch_first true, nonlinearity tanh, head last_step when a module follows the last RNN
else sequence, state-dict order, no activations), each default applied being recorded in
`model.source["assumptions"]`; several module orders that chain are refused, never picked (`order.py`).
Files rnnconvert writes carry those settings and read back exactly.

    read(path, arch=None)                  no torch: .pt through our restricted unpickler (`ptfile.py`,
                                           the globals torch.load(weights_only=True) allows), .safetensors numpy
    write(model, path, emit_module=None)   .pt (torch.save) or .safetensors (numpy) by suffix;
                                           emit_module: path of a standalone nn.Module file
    run(path, x, model)                    the file run by torch itself (verification's runtime)
    write_module(model, code_path, weights=None)   the emitted module alone

Module names follow the canonical layer names; consecutive layers `X_l0, X_l1, ...` (how the reader
names the layers of one multi-layer module) become one `nn.LSTM(num_layers=k)` named X.  Written
refusals: activations other than PyTorch's (sigmoid/tanh; nn.RNN tanh or relu), GRU reset_after
False, cell clip.  Reverse-only layers, merge sum/mul/ave, final_state, activations and initial
states (buffers `<module>.h0`/`.c0`) are expressed in the emitted module.
"""
from __future__ import annotations

from . import loading, safetensors_io
from .reader import read
from .runtime import run, runner
from .writer import write, write_module

__all__ = ["sniff", "read", "write", "run", "runner", "write_module"]

_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def sniff(path) -> bool:
    """A torch.save zip (with data.pkl), a legacy torch.save pickle, or a safetensors file."""
    if loading.is_safetensors(path) or safetensors_io.sniff(path):
        return safetensors_io.sniff(path)
    try:
        with open(path, "rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
    except OSError:
        return False
    if head.startswith(_LEGACY_MAGIC):
        return True
    if head.startswith(b"PK"):
        import zipfile
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (OSError, zipfile.BadZipFile):
            return False
        return any(n.endswith("/data.pkl") or n == "data.pkl" for n in names) and \
            not any(n.endswith("/constants.pkl") for n in names)     # not TorchScript
    return False
