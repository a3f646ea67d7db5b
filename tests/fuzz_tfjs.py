"""Fuzz cases for the TF.js reader: the TF.js-saved fixtures (fixtures/tfjs) with model.json's tree or text
mutated, the shard's bytes mutated, or the manifest edited the way a hostile file would: shard paths that
leave the folder, shapes and dtypes the bytes cannot hold, broken quantization."""
from __future__ import annotations

import json

from fuzz_cases import _pick
from fuzzing import FIXTURES, mutate_bytes, mutate_tree

SEEDS = ("lstm_seq_dense", "bilstm_concat_last_softmax", "bigru_sum_seq", "conv1d_same_gru_dense",
         "embed_mask_lstm_last", "batchnorm_lstm_dropout_lstm", "functional_lstm_gru_backwards_softmax",
         "rnnconvert_bigru_reset_after_seq", "rnnconvert_lstm_projection_initial_state",
         "rnnconvert_embed_mask_bilstm_zero_gap", "rnnconvert_lstm_peepholes_clip_gru_activations")
SHARD = "group1-shard1of1.bin"
EVIL_PATHS = ["../" + SHARD, "/etc/passwd", "a/../../" + SHARD, "", ".", "x" * 5000, "file:///etc/passwd",
              "C:\\x.bin", "sub/" + SHARD, SHARD + "\0"]


def _manifest_edit(doc: dict, rng) -> tuple[str, bool]:
    group = doc["weightsManifest"][0]
    w = _pick(rng, group["weights"])
    op = int(rng.integers(5))
    if op == 0:
        group["paths"] = [_pick(rng, EVIL_PATHS)]
        return f"path {group['paths'][0][:20]!r}", False
    if op == 1:
        w["shape"] = [1 << int(rng.integers(20, 31)), int(rng.integers(1, 1 << 16))]
        return "huge shape", True
    if op == 2:
        w["dtype"] = _pick(rng, ["float64", "string", "bool", "complex64", None, 3])
        return f"dtype {w['dtype']!r}", False
    if op == 3:
        w["quantization"] = _pick(rng, [{"dtype": "uint8"}, {"dtype": "uint8", "scale": "x", "min": 0},
                                        {"dtype": "int4", "scale": 1, "min": 0}, {"dtype": "uint16", "scale": 1e308,
                                                                                  "min": -1e308}, []])
        return "quantization", False
    group["paths"] = group["paths"] * int(rng.integers(2, 4))
    return "repeated shard", False


def tfjs_gen(rng, seeds, i):
    folder = FIXTURES / "tfjs" / _pick(rng, SEEDS)
    text = (folder / "model.json").read_text()
    shard = (folder / SHARD).read_bytes()
    op = int(rng.integers(4))
    huge = False
    if op == 0:
        label, text = "tree", json.dumps(mutate_tree(json.loads(text), rng, int(rng.integers(1, 4))))
    elif op == 1:
        label, data = mutate_bytes(text.encode(), rng)
        text = data.decode("utf-8", "replace")
    elif op == 2:
        label, shard = mutate_bytes(shard, rng)
        label = "shard " + label
    else:
        doc = json.loads(text)
        label, huge = _manifest_edit(doc, rng)
        text = json.dumps(doc)

    def make(d):
        (d / SHARD).write_bytes(shard)
        (d / "model.json").write_text(text, errors="replace")
        return d / "model.json", label
    return label, make, huge
