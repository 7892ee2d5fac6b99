#!/usr/bin/env python3
"""Independent reference ids for tests/clip_tokenizer_test.cpp.

Tokenizes awkward prompts with CLIP's published algorithm (openai/CLIP simple_tokenizer and
transformers' CLIPTokenizer without ftfy: NFC, white-space runs to one space, lower case, the
`regex` module's \\p{L} / \\p{N} pattern, byte-level BPE by merge rank, special tokens cut out
first) over CLIP's merges (tests/data/clip_bpe_simple_vocab_16e6.txt.gz), and writes
tests/data/clip_tokenizer_expected.json. Run: python3 tests/reference/clip_tokenizer_reference.py
(needs python3-regex). The C++ tokenizer is checked against this file and against ids published
by others for the same vocabulary (in the test).
"""
import gzip
import json
import os
import unicodedata

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
SPECIALS = ["<|startoftext|>", "<|endoftext|>"]
PATTERN = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                        regex.IGNORECASE)

PROMPTS = [
    "a photo of a cat",
    "A Photo of a TREE!",
    "  Leading and trailing spaces\t\n",
    "UPPER lower MiXeD",
    "it's they're we've I'm you'll he'd 'S",
    "don't!!! stop???",
    "a sneaker, size 42.5 (EU) -- 100% cotton",
    "1234567890 3.14159 0x1F",
    "e-mail: someone@example.com; url https://x.y/z?q=1&r=2",
    "café crème brûlée",
    "cafe\u0301 (decomposed accent)",
    "Straße ÆØÅ İstanbul",
    "日本語のテキスト and 中文",
    "emoji 🎂👟👢 mixed",
    "naïve façade — “quotes” ‘single’ …",
    "ﬁne ligature and full-width ＡＢＣ１２３",
    "tab\tseparated\u00a0nbsp\u2003em space",
    "<|endoftext|> inside <|startoftext|>text",
    "html &amp; entities &lt;b&gt;",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "",
    "!!!",
    "ankle boots, ankle-boots and ANKLE BOOTS",
    " ".join(["a very long prompt about a sneaker"] * 20),
]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def load():
    lines = gzip.open(os.path.join(DATA, "clip_bpe_simple_vocab_16e6.txt.gz")).read().decode("utf-8").split("\n")
    merges = [tuple(l.split()) for l in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + SPECIALS
    return {t: i for i, t in enumerate(vocab)}, {m: i for i, m in enumerate(merges)}


def bpe(token, ranks):
    word = list(token[:-1]) + [token[-1] + "</w>"]
    while len(word) > 1:
        pairs = [(ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
        rank, _ = min(pairs)
        if rank == float("inf"):
            break
        first, second = next((a, b) for a, b in zip(word, word[1:]) if ranks.get((a, b)) == rank)
        out, i = [], 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                out.append(first + second)
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = out
    return word


def encode(text, vocab, ranks, byte_encoder):
    ids = []
    segments = regex.split("(" + "|".join(regex.escape(s) for s in SPECIALS) + ")", text)
    for seg in segments:
        if seg in SPECIALS:
            ids.append(vocab[seg])
            continue
        seg = unicodedata.normalize("NFC", seg)
        seg = regex.sub(r"\s+", " ", seg).strip().lower()
        for piece in PATTERN.findall(seg):
            if piece in SPECIALS:
                ids.append(vocab[piece])
                continue
            token = "".join(byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(vocab.get(t, vocab["<|endoftext|>"]) for t in bpe(token, ranks))
    return ids


def main():
    vocab, ranks = load()
    be = bytes_to_unicode()
    cases = [{"prompt": p, "ids": encode(p, vocab, ranks, be)} for p in PROMPTS]
    with open(os.path.join(DATA, "clip_tokenizer_expected.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")


if __name__ == "__main__":
    main()
