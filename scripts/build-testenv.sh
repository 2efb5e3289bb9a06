#!/usr/bin/env bash
# Provision the local Kubernetes control plane used by the integration tests and the demo:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler (v1.20.2), built from Debian bookworm's
# source package.
#
# The result is cached outside the repository (default ~/.cache/campaign-autoscaler/testenv) and reused;
# a second run is a no-op. A cache made before kube-scheduler was part of it keeps its three binaries: only
# the scheduler is built and added beside them (one file, moved in whole). Point $CAMPAIGN_TESTENV_ASSETS at a
# folder holding the four binaries to skip the build entirely.
set -euo pipefail

CACHE_ROOT="${CAMPAIGN_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/campaign-autoscaler/testenv}"
K8S_VERSION="1.20.2"
ASSETS="$CACHE_ROOT/k8s-$K8S_VERSION"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler)
# What a cache made before the scheduler joined holds; such a cache is completed, never rebuilt.
CORE_BINARIES=(etcd kube-apiserver kube-controller-manager)

# One line per stage on stderr, with the time since the script started (stdout carries only the result).
SECONDS=0
log() { printf '[testenv %2dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

have_assets() {
  local dir=$1 bin
  for bin in "${BINARIES[@]}"; do [ -x "$dir/$bin" ] || return 1; done
}

have_core_assets() {
  local dir=$1 bin
  for bin in "${CORE_BINARIES[@]}"; do [ -x "$dir/$bin" ] || return 1; done
}

if [ -n "${CAMPAIGN_TESTENV_ASSETS:-}" ]; then
  if have_assets "$CAMPAIGN_TESTENV_ASSETS"; then
    log "Using assets from \$CAMPAIGN_TESTENV_ASSETS=$CAMPAIGN_TESTENV_ASSETS"
    echo "$CAMPAIGN_TESTENV_ASSETS"
    exit 0
  fi
  log "\$CAMPAIGN_TESTENV_ASSETS=$CAMPAIGN_TESTENV_ASSETS lacks one of: ${BINARIES[*]}"
  exit 1
fi

if have_assets "$ASSETS"; then
  log "Control plane assets already cached in $ASSETS"
  echo "$ASSETS"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# One build at a time (a second caller waits, then finds the cache filled).
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock 9
if have_assets "$ASSETS"; then
  echo "$ASSETS"
  exit 0
fi

enable_deb_src() {
  # Derive deb-src entries from the machine's own apt sources (deb822 and one-line formats).
  local out=/etc/apt/sources.list.d/campaign-autoscaler-src.sources
  local list=/etc/apt/sources.list.d/campaign-autoscaler-src.list
  [ -e "$out" ] || [ -e "$list" ] && return 0
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    grep -q 'debian' "$f" || continue
    awk '/^Types:/ && /deb/ {print "Types: deb-src"; next} {print}' "$f"
    echo
  done | $SUDO tee "$out" >/dev/null
  if [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | $SUDO tee "$list" >/dev/null || true
  fi
}

# Only the scheduler is missing: keep the cached binaries (other checkouts use them meanwhile) and add it.
ONLY_SCHEDULER=""
if have_core_assets "$ASSETS"; then
  ONLY_SCHEDULER=1
  log "Adding kube-scheduler to the cached control plane in $ASSETS (the other binaries stay as they are)."
else
  log "First run: building the control plane once (about 10 minutes on 2 cores; cached in $CACHE_ROOT)."
fi
log "Stage 1/6: adding deb-src entries derived from the apt sources, then apt-get update..."
enable_deb_src
$SUDO apt-get update -qq
log "Stage 2/6: installing etcd-server golang-1.19-go rsync dpkg-dev golang-github-modern-go-reflect2-dev make..."
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  etcd-server golang-1.19-go rsync dpkg-dev golang-github-modern-go-reflect2-dev make >/dev/null

WORK="$CACHE_ROOT/build"
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK" "$CACHE_ROOT/gocache" "$ASSETS.tmp"' EXIT
cd "$WORK"
log "Stage 3/6: fetching the kubernetes $K8S_VERSION source package (apt-get source)..."
# Debian versions it 1.20.5+really1.20.2 (a revert to 1.20.2 after a 1.20.5 upload); take the newest
# revision of that (security updates add +deb12uN).
SRC_VERSION=$(apt-cache showsrc kubernetes | awk -v want="really$K8S_VERSION" '/^Version:/ && index($2, want) {print $2}' |
  sort -V | tail -n 1)
[ -n "$SRC_VERSION" ] || { log "No kubernetes $K8S_VERSION source package in the apt sources"; exit 1; }
apt-get source -qq "kubernetes=$SRC_VERSION" >"$WORK/source.log" 2>&1 || {
  tail -n 20 "$WORK/source.log" >&2; log "apt-get source kubernetes failed"; exit 1; }
SRC=$(find "$WORK" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n 1)
[ -n "$SRC" ] || { log "Source tree not found after apt-get source"; exit 1; }

# The vendored reflect2 predates Go 1.18 and makes the apiserver crash at start; use Debian's 1.0.2.
log "Stage 4/6: replacing vendor/github.com/modern-go/reflect2 with Debian's 1.0.2..."
rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
mkdir -p "$SRC/vendor/github.com/modern-go/reflect2"
rsync -a /usr/share/gocode/src/github.com/modern-go/reflect2/ "$SRC/vendor/github.com/modern-go/reflect2/"

mkdir -p "$WORK/.go/src/k8s.io"
ln -sfn "$SRC" "$WORK/.go/src/k8s.io/kubernetes"
cd "$WORK/.go/src/k8s.io/kubernetes"
# A heartbeat a minute while Go compiles, so a long first run is never silent.
go_make() {
  make WHAT="$1" >>"$WORK/build.log" 2>&1 &
  local build_pid=$!
  while kill -0 "$build_pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$build_pid" 2>/dev/null || break; sleep 2; done
    if kill -0 "$build_pid" 2>/dev/null; then
      log "  still building ($(du -sh "$CACHE_ROOT/gocache" 2>/dev/null | cut -f1 || echo 0) of Go build cache so far)"
    fi
  done
  wait "$build_pid" || {
    tail -n 40 "$WORK/build.log" >&2; log "Build failed; full log in $WORK/build.log"; exit 1; }
}

export GOPATH="$WORK/.go" PATH="/usr/lib/go-1.19/bin:$PATH" GO111MODULE=off GOFLAGS="" GOCACHE="$CACHE_ROOT/gocache"
if [ -z "$ONLY_SCHEDULER" ]; then
  log "Stage 5/6: building kube-apiserver and kube-controller-manager (the long part, several minutes)..."
  go_make "cmd/kube-apiserver cmd/kube-controller-manager"
fi
# A stage of its own (sharing the Go build cache with stage 5), so the log shows what the scheduler adds.
STAGE6_AT=$SECONDS
log "Stage 6/6: building kube-scheduler..."
go_make "cmd/kube-scheduler"
log "  kube-scheduler built in $((SECONDS - STAGE6_AT)) s"

if [ -n "$ONLY_SCHEDULER" ]; then
  cp "_output/bin/kube-scheduler" "$ASSETS/.kube-scheduler.tmp"
  mv "$ASSETS/.kube-scheduler.tmp" "$ASSETS/kube-scheduler"
else
  mkdir -p "$ASSETS.tmp"
  cp "_output/bin/kube-apiserver" "_output/bin/kube-controller-manager" "_output/bin/kube-scheduler" "$ASSETS.tmp/"
  cp "$(command -v etcd || echo /usr/bin/etcd)" "$ASSETS.tmp/etcd"
  rm -rf "$ASSETS"
  mv "$ASSETS.tmp" "$ASSETS"
fi
cd /
log "Control plane assets ready in $ASSETS ($(du -sh "$CACHE_ROOT" | cut -f1) cached)"
echo "$ASSETS"
