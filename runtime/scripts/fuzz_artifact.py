"""Mutate a .bimlp artifact at random and load + run every mutant (numpy only, no torch), for the
AddressSanitizer build (see runtime/README.md):

    python runtime/scripts/fuzz_artifact.py MODEL.bimlp [ITERATIONS] [SEED]

Each mutant must either raise bimlp_runtime.ArtifactError or load and run; anything else (a crash,
an ASan report, another exception) fails. Prints a one-line summary last.
"""

from __future__ import annotations

import struct
import sys

import numpy as np

import bimlp_runtime


def mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(raw)
    n = struct.unpack("<Q", raw[:8])[0]
    for _ in range(int(rng.integers(1, 5))):
        limit = n + 8 if rng.random() < 0.7 else len(b)  # mostly the header, where parsing happens
        p = int(rng.integers(0, max(1, min(limit, len(b)))))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            b[p] ^= int(rng.integers(1, 256))
        elif kind == 1:
            del b[p:]
        elif kind == 2:
            b[p:p] = bytes(rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8))
        else:
            b[p:p + 8] = struct.pack("<q", int(rng.integers(-2**62, 2**62)))
        if not b:
            break
    return bytes(b)


def main(argv: list[str]) -> int:
    path, iters, seed = argv[0], int(argv[1]) if len(argv) > 1 else 500, int(argv[2]) if len(argv) > 2 else 0
    with open(path, "rb") as f:
        raw = f.read()
    rng = np.random.default_rng(seed)
    refused = ran = 0
    for _ in range(iters):
        data = mutate(raw, rng)
        try:
            model = bimlp_runtime.from_bytes(data, name="mutant.bimlp", threads=2)
        except bimlp_runtime.ArtifactError:
            refused += 1
            continue
        model.run(np.ones((1, model.in_channels, 9, 9), np.float32))
        ran += 1
    print(f"fuzz {path}: {iters} mutants, {refused} refused with ArtifactError, {ran} loaded and ran, no crash")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
