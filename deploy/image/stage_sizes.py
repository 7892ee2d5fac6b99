#!/usr/bin/env python3
"""Installed bytes of each runtime stage of qdm's Dockerfile, without a Docker engine: the
packages a stage installs and their dependencies (Debian 12's index on this machine, Installed-Size)
beyond the base image (debian:12-slim: the Priority required packages and apt), plus the binaries
it copies from the build stage. The base image is the same for every stage and not counted.
    python3 deploy/image/stage_sizes.py [Dockerfile] [BIN_DIR]     (a Markdown table)
    python3 deploy/image/stage_sizes.py Dockerfile build/bin --json
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dockerfile_stages  # noqa: E402


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def closure(pkgs):
    if not pkgs:
        return set()
    out = run("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
              "--no-breaks", "--no-replaces", "--no-enhances", *pkgs)
    names = {l.split(":", 1)[-1].strip().strip("<>") for l in out.splitlines()}
    return {n.split(":")[0] for n in names if n}


def installed_kib(pkgs):
    """Installed-Size (KiB) of each real package (virtual ones have no record)."""
    sizes, name = {}, None
    for l in run("apt-cache", "show", "--no-all-versions", *sorted(pkgs)).splitlines():
        if l.startswith("Package: "):
            name = l.split(": ", 1)[1]
        elif l.startswith("Installed-Size: ") and name:
            sizes[name] = int(l.split(": ", 1)[1])
    return sizes


def sizes(dockerfile, bindir):
    stages = dockerfile_stages.parse(dockerfile)
    required = [l.split()[0] for l in run("dpkg-query", "-W", "-f=${Package} ${Priority}\n").splitlines()
                if l.endswith(" required")]
    base = closure(required + ["apt"])
    out = {}
    for name in ("scheduler", "worker", "sampler"):
        s = stages[name]
        pkgs = closure(s["packages"]) - base
        kib = installed_kib(pkgs)
        binaries = {b: os.path.getsize(os.path.join(bindir, b)) for b in s["copies"]}
        out[name] = {"package_bytes": 1024 * sum(kib.values()), "packages": len(kib),
                     "binary_bytes": sum(binaries.values()), "largest": sorted(kib.items(), key=lambda kv: -kv[1])[:3]}
        out[name]["bytes"] = out[name]["package_bytes"] + out[name]["binary_bytes"]
    return out


if __name__ == "__main__":
    dockerfile = sys.argv[1] if len(sys.argv) > 1 else "Dockerfile"
    bindir = sys.argv[2] if len(sys.argv) > 2 else "build/bin"
    result = sizes(dockerfile, bindir)
    if "--json" in sys.argv:
        json.dump(result, sys.stdout, indent=1)
        sys.exit(0)
    worker = result["worker"]["bytes"]
    print("| stage | installed bytes over debian:12-slim | packages | of which binaries | / worker | largest packages (KiB) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, r in result.items():
        largest = ", ".join(f"{p} {k}" for p, k in r["largest"])
        print(f"| {name} | {r['bytes']:,} | {r['packages']} | {r['binary_bytes']:,} | {r['bytes'] / worker:.3f}x | {largest} |")
