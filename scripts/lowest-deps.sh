#!/usr/bin/env bash
# The lowest-versions tier: proves the floors of pyproject's [project] dependencies.
#
# In a venv of its own (build/lowest-deps/venv, rebuilt on every run; build/ is git-ignored) it installs the
# project with every runtime dependency pinned at exactly the lowest version pyproject allows (its `>=`
# floor), checks and prints the installed versions, and runs the unit tests and one integration smoke test
# that starts the real operator against the local control plane (`make testenv` provisions it).
# The test extras resolve as usual: their own lowest versions do not run this suite on Python 3.11.
# Any failure, and pytest finding no test (exit 5), fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
DIR="${LOWEST_DEPS_DIR:-build/lowest-deps}"
UV_VERSION="0.13.9"
SMOKE_TEST="tests/integration/test_operator.py::test_prescale_lands_on_time_and_baseline_is_restored_exactly"
log() { printf '[lowest-deps] %s\n' "$*" >&2; }
began=$SECONDS

rm -rf "$DIR"
mkdir -p "$DIR"
"$PYTHON" -m venv "$DIR/tools"
"$DIR/tools/bin/python" -m pip install -q "uv==$UV_VERSION" packaging

# One `name==floor` constraint per runtime dependency, read from pyproject.
"$DIR/tools/bin/python" - pyproject.toml >"$DIR/floors.txt" <<'EOF'
import sys
import tomllib

from packaging.requirements import Requirement

with open(sys.argv[1], "rb") as file:
    dependencies = tomllib.load(file)["project"]["dependencies"]
for line in dependencies:
    requirement = Requirement(line)
    if requirement.marker is not None and not requirement.marker.evaluate():
        continue
    floors = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    if len(floors) != 1:
        sys.exit(f"pyproject dependency {line!r}: needs exactly one floor (>=, == or ~=)")
    print(f"{requirement.name}=={floors[0]}")
EOF

log "Installing the project with its runtime dependencies at their floors into $DIR/venv ..."
"$DIR/tools/bin/uv" venv -q --python "$PYTHON" "$DIR/venv"
"$DIR/tools/bin/uv" pip install -q --python "$DIR/venv/bin/python" --constraint "$DIR/floors.txt" -e '.[test]'

# The pins above make the resolver fail when a floor cannot be installed; this says what was installed.
"$DIR/venv/bin/python" - "$DIR/floors.txt" <<'EOF'
import sys
from importlib.metadata import version

from packaging.version import Version

wrong = []
print(f"{'runtime dependency':<24} {'floor':<10} installed")
with open(sys.argv[1]) as file:
    for line in file:
        name, floor = line.strip().split("==")
        installed = version(name)
        print(f"{name:<24} {floor:<10} {installed}")
        if Version(installed) != Version(floor):
            wrong.append(name)
if wrong:
    sys.exit(f"not at their floor: {', '.join(wrong)}")
EOF

log "Unit tests at the floors ..."
"$DIR/venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit

log "Integration smoke test at the floors ..."
# CI=true: a missing control plane fails the test instead of skipping it.
CI=true "$DIR/venv/bin/python" -m pytest -q -p no:cacheprovider "$SMOKE_TEST" | tee "$DIR/smoke.log"
grep -Eq '^1 passed' "$DIR/smoke.log" || {
  log "the smoke test did not pass (skipped or not found?)"
  exit 1
}

log "Done in $((SECONDS - began))s."
