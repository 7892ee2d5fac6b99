#!/usr/bin/env bash
# The Dockerfile's images can run what they copy: no Docker engine runs on CI machines, so this
# checks the Dockerfile against this machine's Debian 12 package index and the built binaries.
#  - every package a stage installs exists in the index (a typo fails `docker build`);
#  - the build stage installs every build dependency .ci/setup installs;
#  - the targets the build stage builds are the binaries the runtime stages copy;
#  - every shared library a runtime stage's binaries load comes from a package that stage
#    installs, or from their dependencies, or from the base image (Priority: required, and apt);
#  - every FROM names an image (only ARGs before the first FROM reach it), runtime stages are not root;
#  - every QDM_* variable a stage sets is an option of the binary it runs ("Env:QDM_..." in --help).
# deploy/image/image_check.sh goes further (it builds root filesystems and runs the binaries in them);
# it downloads packages, so it is not part of the tests.
set -euo pipefail
src="${QDM_SOURCE_DIR:?}"; bin="${QDM_BIN_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v apt-cache >/dev/null && command -v dpkg-query >/dev/null || fail "needs Debian's apt-cache and dpkg-query"
python3 - "$src" "$bin" <<'PY' || fail "Dockerfile"
import os, re, subprocess, sys
src, bindir = sys.argv[1], sys.argv[2]

def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout

sys.path.insert(0, os.path.join(src, "deploy/image"))
import dockerfile_stages
stages = dockerfile_stages.parse(os.path.join(src, "Dockerfile"))

for name in ("build", "scheduler", "worker", "sampler", "worker-cuda"):
    assert name in stages, f"no stage {name}"
for name, s in stages.items():
    # An ARG declared inside an earlier stage expands to nothing on a FROM line.
    assert s["from"] and "$" not in s["from"], f"stage {name}: FROM resolves to {s['from']!r}"
    if name != "build":
        assert s["user"] and s["user"] not in ("0", "root"), f"stage {name} runs as root"

# --- every package exists in the index ------------------------------------------------------------
for name, s in stages.items():
    assert s["packages"], f"stage {name} installs nothing"
    if name == "worker-cuda":
        continue  # an Ubuntu CUDA base image: another index
    known = {m.group(1) for m in re.finditer(r"^(\S+):\n  Installed: .*\n  Candidate: (?!\(none\))",
                                              run("apt-cache", "policy", *s["packages"]), re.M)}
    unknown = sorted(set(s["packages"]) - known)
    assert not unknown, f"stage {name}: {unknown} not in Debian 12's package index"

# --- the build stage installs every build dependency of .ci/setup --------------------------------
setup = open(os.path.join(src, ".ci/setup")).read()
block = re.search(r"packages=\((.*?)\n\)", setup, re.S).group(1)
setup_pkgs = [t for l in block.splitlines() for t in l.split("#")[0].split()]
build_deps = [p for p in setup_pkgs if p.endswith("-dev") or p in ("cmake", "build-essential", "protobuf-compiler-grpc")]
tests_only = {"libgtest-dev", "libgmock-dev", "libbenchmark-dev"}  # the image builds no tests or benchmarks
missing = sorted(set(build_deps) - set(stages["build"]["packages"]) - tests_only)
assert not missing, f"build stage lacks {missing} (.ci/setup installs them)"

# --- the build stage builds what the runtime stages copy ------------------------------------------
built = set(stages["build"]["builds"])
for name in ("scheduler", "worker", "sampler"):
    copies = stages[name]["copies"]
    assert copies and set(copies) <= built, f"stage {name} copies {copies}, the build stage builds {sorted(built)}"
    assert stages[name]["entrypoint"] in copies, f"stage {name} runs {stages[name]['entrypoint']}, which it does not copy"

# --- shared libraries: each comes from the stage's packages, their dependencies or the base ------
def closure(pkgs):
    if not pkgs:
        return set()
    out = run("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
              "--no-breaks", "--no-replaces", "--no-enhances", *pkgs)
    # Lines are a package name, "Depends: name" / "PreDepends: <virtual>", or a provider's name.
    names = {l.split(":", 1)[-1].strip().strip("<>") for l in out.splitlines()}
    return {n.split(":")[0] for n in names if n}

required = [l.split()[0] for l in run("dpkg-query", "-W", "-f=${Package} ${Priority}\n").splitlines()
            if l.endswith(" required")]
base = closure(required + ["apt"])

owners = {}  # file -> package, from dpkg's file lists (one dpkg -S per library is minutes)
info = "/var/lib/dpkg/info"
for f in os.listdir(info):
    if f.endswith(".list"):
        for l in open(os.path.join(info, f), errors="replace"):
            if ".so" in l:
                owners[l.rstrip("\n")] = f[:-5].split(":")[0]

def owner(path):
    real = os.path.realpath(path)
    for cand in (path, real, real.replace("/usr/lib/", "/lib/", 1), path.replace("/usr/lib/", "/lib/", 1)):
        if cand in owners:
            return owners[cand]
    return None

for name in ("scheduler", "worker", "sampler"):
    have = closure(stages[name]["packages"]) | base
    for b in stages[name]["copies"]:
        exe = os.path.join(bindir, b)
        assert os.access(exe, os.X_OK), f"{exe} is not built"
        for l in run("ldd", exe).splitlines():
            m = re.search(r"=> (/\S+)", l)
            if not m:
                continue
            pkg = owner(m.group(1))
            assert pkg, f"{b}: {m.group(1)} belongs to no package"
            assert pkg in have, f"stage {name}: {b} loads {m.group(1)} from {pkg}, which the image does not install"

# --- QDM_* variables are options of the binary the stage runs -------------------------------------
for name in ("scheduler", "worker", "sampler", "worker-cuda"):
    s = stages[name]
    assert s["env"], f"stage {name} sets no QDM_* variables"
    helptext = run(os.path.join(bindir, s["entrypoint"]), "--help")
    for v in s["env"]:
        assert f"(Env:{v})" in helptext, f"stage {name} sets {v}, which {s['entrypoint']} does not read"
# --- the sampler image is a fraction of the worker's: no LibTorch, no BLAS ---------------------------
import stage_sizes
size = stage_sizes.sizes(os.path.join(src, "Dockerfile"), bindir)
ratio = size["sampler"]["bytes"] / size["worker"]["bytes"]
print(f"dockerfile_test: installed bytes over the base: worker {size['worker']['bytes']:,}, "
      f"sampler {size['sampler']['bytes']:,} ({ratio:.3f}x)")
assert ratio <= 0.25, f"the sampler image is {ratio:.3f}x the worker's installed bytes (goal <= 0.25x)"
print("dockerfile_test:", {n: len(s["packages"]) for n, s in stages.items()}, "packages per stage")
PY
echo "dockerfile_test: all passed"
