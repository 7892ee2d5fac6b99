#!/usr/bin/env python3
"""Rewrites the temporal feature cache of a qdm artifact (its `temporal_cache.*` tensors) at
another precision, everything else byte for byte: to measure what the F16 cache costs.
    python3 bench/cache_dtype.py IN.safetensors OUT.safetensors F16|F32
F16 rounds to nearest even (Python's struct 'e'); a value beyond F16's range is refused.
Standard library only."""
import json, struct, sys

FORMATS = {"F16": ("e", 2), "F32": ("f", 4)}


def rewrite(src, dst, dtype):
    data = open(src, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8:8 + n]), data[8 + n:]
    tensors = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])
    out, chunks, offset, changed = {}, [], 0, 0
    for name, info in tensors:
        begin, end = info["data_offsets"]
        raw = body[begin:end]
        if name.startswith("temporal_cache.") and info["dtype"] != dtype:
            code, size = FORMATS[info["dtype"]]
            values = struct.unpack(f"<{len(raw) // size}{code}", raw)
            raw = struct.pack(f"<{len(values)}{FORMATS[dtype][0]}", *values)  # OverflowError past F16's range
            info, changed = dict(info, dtype=dtype), changed + 1
        out[name] = dict(info, data_offsets=[offset, offset + len(raw)])
        chunks.append(raw)
        offset += len(raw)
    if "__metadata__" in header:
        out["__metadata__"] = header["__metadata__"]
    text = json.dumps(out).encode()
    text += b" " * (-len(text) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in FORMATS:
        sys.exit(__doc__)
    print(f"{rewrite(*sys.argv[1:4])} cache tensors rewritten at {sys.argv[3]}", file=sys.stderr)
