#!/usr/bin/env python3
"""The stages of qdm's Dockerfile as data: base image, RUN commands, packages installed with
apt-get, targets built, binaries copied from the build stage, QDM_* environment, user and entrypoint.
Used by tests/dockerfile_test.sh and deploy/image/image_check.sh, which check the Dockerfile
without a Docker engine.
    python3 deploy/image/dockerfile_stages.py Dockerfile               (the stages as JSON)
    python3 deploy/image/dockerfile_stages.py Dockerfile worker env    (one field, a line per value)
"""
import json
import re
import shlex
import sys


def logical_lines(path):
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    lines, cur = [], ""
    for raw in open(path):
        raw = raw.rstrip("\n")
        if raw.lstrip().startswith("#"):
            continue
        cont = raw.endswith("\\")
        cur += raw[:-1] + " " if cont else raw
        if not cont:
            if cur.strip():
                lines.append(cur.strip())
            cur = ""
    return lines


def parse(path):
    args, stages, stage = {}, {}, None
    for line in logical_lines(path):
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and stage is None:  # only ARGs before the first FROM reach FROM lines
            name, _, default = rest.partition("=")
            args.setdefault(name.strip(), default.strip())
        elif word == "FROM":
            image, _, name = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), image.strip())
            stage = name.strip() or image
            stages[stage] = {"from": image, "runs": [], "packages": [], "builds": [], "copies": [], "env": {},
                             "user": None, "entrypoint": None}
        elif stage is None:
            continue
        elif word == "RUN":
            s = stages[stage]
            s["runs"].append(rest)
            for part in re.split(r"&&|;", rest):
                toks = shlex.split(part)
                if "apt-get" in toks and "install" in toks:
                    after = toks[toks.index("install") + 1:]
                    s["packages"] += [t for t in after if not t.startswith("-") and "=" not in t]
                if "--target" in toks:
                    i = toks.index("--target") + 1
                    while i < len(toks) and not toks[i].startswith("-"):
                        s["builds"].append(toks[i])
                        i += 1
        elif word == "COPY" and "--from=build" in rest:
            paths = [p for p in rest.split() if not p.startswith("--")][:-1]
            stages[stage]["copies"] += [p.rsplit("/", 1)[-1] for p in paths if "/build/bin/" in p]
        elif word == "ENV":
            stages[stage]["env"].update(dict(re.findall(r"(QDM_[A-Z_]+)=(\S+)", rest)))
        elif word == "USER":
            stages[stage]["user"] = rest.strip()
        elif word == "ENTRYPOINT":
            stages[stage]["entrypoint"] = re.findall(r'"([^"]+)"', rest)[0]
    return stages


if __name__ == "__main__":
    stages = parse(sys.argv[1] if len(sys.argv) > 1 else "Dockerfile")
    if len(sys.argv) > 3:  # one field of one stage, a value (or KEY=VALUE) per line
        field = stages[sys.argv[2]][sys.argv[3]]
        if isinstance(field, dict):
            field = [f"{k}={v}" for k, v in field.items()]
        print("\n".join(field if isinstance(field, list) else [field or ""]))
    else:
        json.dump(stages, sys.stdout, indent=1)
        print()
