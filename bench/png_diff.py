#!/usr/bin/env python3
"""Pixel differences between the same-named PNGs of two folders (8-bit, any colour type
without palette), e.g. images of the same seeds from the integer kernels and the simulation:
max / mean absolute difference and the MSE (pixels in [0, 1]) with its PSNR over all images.
    python3 bench/png_diff.py DIR_A DIR_B   ->  one JSON line
Standard library only (the machines have no numpy / PIL)."""
import json, math, os, struct, sys, zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            if depth != 8 or colour == 3:
                raise ValueError(f"{path}: only 8-bit non-palette PNGs")
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, bpp = zlib.decompress(idat), width * channels, channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return b"".join(rows)


def main(a_dir, b_dir):
    names = sorted(n for n in os.listdir(a_dir) if n.endswith(".png") and n != "grid.png")
    worst, total, count, differing, over, squares = 0, 0, 0, 0, 0, 0
    for n in names:
        a, b = read_png(os.path.join(a_dir, n)), read_png(os.path.join(b_dir, n))
        if len(a) != len(b):
            raise ValueError(f"{n}: sizes differ")
        d = [abs(x - y) for x, y in zip(a, b)]
        worst, total, count = max(worst, max(d)), total + sum(d), count + len(d)
        squares += sum(v * v for v in d)
        differing += sum(1 for v in d if v)
        over += max(d) > 16
    mse = squares / max(count, 1) / 255 ** 2  # pixels in [0, 1]
    print(json.dumps({"images": len(names), "max_abs_diff_255": worst, "mean_abs_diff_255": total / max(count, 1),
                      "differing_pixel_fraction": differing / max(count, 1), "images_with_max_over_16": over,
                      "mse": mse, "psnr_db": 10 * math.log10(1 / mse) if mse else float("inf")}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
