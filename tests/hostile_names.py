"""Models whose names are code: the hostile-names files for tests/test_hostile_names.py.

Every name a file can carry (the model's, each layer's, the input's and the output's) holds a payload
that would create the marker file `MARK` (an absolute path) if any generated code ever ran it:
Python (a docstring closed by triple quotes, a comment ended by a newline or a carriage return),
JavaScript (a comment ended by U+2028, a string closed by a quote), C (a comment closed by `*/`,
a trigraph `??/`, a trailing backslash), MATLAB/Octave (a quote closing a string, `%` and a newline),
plus quotes, backslashes, NUL, `</script>`, U+0085/U+2029 and non-ASCII text.

`write_all(folder)` writes each source file with rnnconvert's own writers: `names.rnnc` and
`names.onnx` (every name exactly as above), `names.keras` (its config.json patched: model, input and
layer names) and `names.h5` (its model_config patched: the model's name and the layers without weights,
the others being found by name in the file).  `python -m tests.hostile_names DIR` writes them all into DIR.
"""
from __future__ import annotations

import os
import sys

import numpy as np

MARK_NAME = "PWNED"


def payloads(mark: str) -> dict[str, str]:
    """Name payloads keyed by what they attack; `mark` is the absolute marker path."""
    py = f"__import__('pathlib').Path({mark!r}).touch()"
    js = f"import('node:fs').then(f => f.writeFileSync({mark!r}, ''))"
    c = f'int system(const char *); __attribute__((constructor)) static void pwn_(void) {{ (void)system("touch {mark}"); }}'
    codes = " ".join(str(b) for b in mark.encode())
    octave = f"fclose(fopen(char([{codes}]), 'w'))"
    return {
        "py_docstring": f'm"""\n{py}\n"""',
        "py_comment": f"a\n    {py}  #",
        "py_comment_8": f"b\r        {py}  #",
        "py_docstring_single": f"m'''\n{py}\n'''",
        "py_string": f"c')\n{py}\nx = ('",
        "js_comment": f"d*/ {js}; /*",
        "js_line": f"e\u2028{js};//",
        "js_string": f"f\", x: {js}, y: \"",
        "c_comment": f"g*/\n#ifndef PWN_\n#define PWN_\n{c}\n#endif\n/*",
        "c_trigraph": "h??/\n??/",
        "c_backslash": "i \\",
        "matlab": f"j'); {octave}; %\n{octave}",
        "html": "k</script><script>alert(1)</script>",
        "separators": "l\u0085\u2029\x0b\x0c\u00e9\u6a21\U0001f600",
        "nul": "n\x00x",
    }


# Per target language, the payloads that make that language's generated code run them on the code
# before rnnconvert escaped names: (model name, layer/input/output names).  "all" mixes every payload.
TARGETED = {
    "py": ("py_docstring", "py_comment"),       # the NumPy script: docstring, comments in predict()
    "torch": ("py_docstring", "py_comment_8"),  # the emitted module: docstring, comments in forward()
    "js": ("js_line", "js_line"),               # the ES module's header comment
    "c": ("c_comment", "c_comment"),            # every C comment (the first one defines the constructor)
}


def model(mark: str, lang: str = "all", *, drop=()):
    """A small LSTM -> Dense -> Activation model whose names are payloads: for `lang` "all" each name
    a different payload (those in `drop` left out, the rest joined into the model's name); for a key of
    TARGETED, the model's name and every other name (each with its own prefix) that language's."""
    from rnnconvert.model import ActivationLayer, Activation, Dense, DirectionWeights, InputSpec, Model, Recurrent
    p = {k: v for k, v in payloads(mark).items() if k not in drop}
    if lang == "all":
        names = list(p.values())
        layer_names, (input_name, output_name), model_name = names[:3], names[3:5], "|".join(names[5:])
    else:
        first, other = TARGETED[lang]
        model_name = p[first]
        input_name, output_name, *layer_names = (f"{k}{p[other]}" for k in "iolda")
    rng = np.random.default_rng(21)
    H, F = 3, 2

    def f32(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)
    lstm = Recurrent(layer_names[0], "lstm", H, "forward",
                     [DirectionWeights(f32(4 * H, F), f32(4 * H, H), f32(4 * H), f32(4 * H))],
                     [Activation("sigmoid"), Activation("tanh"), Activation("tanh")])
    layers = [lstm, Dense(layer_names[1], f32(H, 2), f32(2)), ActivationLayer(layer_names[2], Activation("tanh"))]
    return Model(layers, InputSpec(input_name, F), output_name=output_name, name=model_name)


def names_of(m) -> dict:
    """Every name a model carries, to compare a round trip."""
    return {"model": m.name, "input": m.input.name, "output": m.output_name,
            "layers": [layer.name for layer in m.layers]}


def _patch_keras_config(cfg: dict, names: list[str], layers_too: bool) -> dict:
    """The model's name, the InputLayer's and (layers_too) every layer's name replaced by payloads; in
    an .h5 only layers without weights (InputLayer, Activation), whose groups are not found by name."""
    cfg["config"]["name"] = names[0]
    for k, entry in enumerate(cfg["config"]["layers"]):
        if layers_too or entry["class_name"] in ("InputLayer", "Activation"):
            entry["config"]["name"] = names[1 + k]
    return cfg


def write_keras(path, mark: str) -> None:
    """A .keras or .h5 with payload names: rnnconvert's writer maps names to Keras's rule (letters,
    digits, '_', '-'), so its config is patched afterwards, as an attacker would."""
    import json
    import zipfile
    import h5py
    from rnnconvert import api
    path = os.fspath(path)
    names = list(payloads(mark).values())
    plain = os.path.join(os.path.dirname(path), "plain_" + os.path.basename(path))
    api.write(model(mark), plain)
    if path.endswith(".h5"):
        os.replace(plain, path)
        with h5py.File(path, "r+") as f:
            cfg = json.loads(f.attrs["model_config"])
            f.attrs["model_config"] = json.dumps(_patch_keras_config(cfg, names, layers_too=False))
        return
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as dst:
        for member in src.namelist():
            data = src.read(member)
            if member == "config.json":
                data = json.dumps(_patch_keras_config(json.loads(data), names, layers_too=True)).encode()
            dst.writestr(member, data)
    os.remove(plain)


def destination_names() -> dict[str, str]:
    """Destination file names that are code where a generator puts the file's name (a docstring, an
    Octave command line); a payload creates MARK_NAME in the working directory (names hold no '/')."""
    py = f'+open(__import__("os").getcwd()+chr(47)+"{MARK_NAME}","w").name+'
    return {".py": f'q"""{py}""".py', ".pt": f'q"""{py}""".pt',
            ".mat": f"q'); fclose(fopen([pwd() char(47) '{MARK_NAME}'], 'w')); %.mat"}


SOURCES = ("names.rnnc", "names.onnx", "names.keras", "names.h5")


def write(folder, name: str, lang: str = "all") -> str:
    """One hostile-names source file (a name of SOURCES, or `names_<lang>.rnnc` for a key of
    TARGETED) in `folder`; its path."""
    from rnnconvert import api
    folder = os.path.abspath(os.fspath(folder))
    mark = os.path.join(folder, MARK_NAME)
    path = os.path.join(folder, name)
    if name.endswith((".keras", ".h5")):
        write_keras(path, mark)
    else:
        api.write(model(mark, lang), path)
    return path


def write_all(folder) -> dict[str, str]:
    """Every hostile-names source file in `folder`; {name: path}."""
    out = {name: write(folder, name) for name in SOURCES}
    return out | {f"names_{lang}.rnnc": write(folder, f"names_{lang}.rnnc", lang) for lang in TARGETED}


if __name__ == "__main__":
    for path in write_all(sys.argv[1]).values():
        print(path)
