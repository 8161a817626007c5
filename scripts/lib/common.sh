# shellcheck shell=bash
# Shared by scripts/demo, scripts/test, scripts/bench and tests/*/run: paths, versions and
# idempotent installers. Every installer checks first and does nothing when the thing is
# already there, so a fresh machine and a warm one run the same commands.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Slow builds (helm, Kubernetes binaries, Go caches) are cached per machine, outside the
# checkout, so a fresh clone (CI) reuses them; PCK_CACHE overrides the location.
CACHE="${PCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/patroni-citus-k8s}"
VENV="$ROOT/.venv"
BUILD="$ROOT/build"
# shellcheck source=../../versions.env
. "$ROOT/versions.env"

say() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages every part of the project needs (build, local cluster, tests).
APT_PACKAGES=(
  build-essential meson ninja-build pkg-config
  libev-dev libyaml-dev libcjson-dev libssl-dev libpq-dev libcurl4-openssl-dev libcmocka-dev
  clang libclang-rt-14-dev
  postgresql-15 postgresql-15-postgis-3 postgresql-15-partman postgresql-client-15
  etcd-server etcd-client tini openssl util-linux procps iproute2 python3-venv
  pgbackrest curl
)

ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Patroni (pinned in versions.env, the same version the image installs) and the Python test
# tools, in a virtualenv under the project. Built on Debian's /usr/bin/python3: the pods run
# Patroni as the postgres user, which cannot reach an interpreter under /root (pyenv).
ensure_venv() {
  local stamp="$VENV/.stamp-$PATRONI_VERSION-$PSYCOPG2_VERSION-$PYTHON_ETCD_VERSION-3"
  [ -f "$stamp" ] && return 0
  say "creating $VENV (patroni $PATRONI_VERSION)"
  /usr/bin/python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "patroni[etcd3]==$PATRONI_VERSION" "psycopg2-binary==$PSYCOPG2_VERSION" \
    "python-etcd==$PYTHON_ETCD_VERSION" pytest pyyaml cryptography
  touch "$stamp"
}

# matplotlib (pinned in versions.env; it brings Pillow) in the project's virtualenv, for the
# PNG plots of scripts/bench (scripts/lib/benchplot.py) and tests/bench. Only those call it:
# ensure_venv stays as quick as it was for everyone else.
ensure_bench_plot() {
  ensure_venv
  local stamp="$VENV/.stamp-matplotlib-$MATPLOTLIB_VERSION"
  [ -f "$stamp" ] && return 0
  say "installing matplotlib $MATPLOTLIB_VERSION into $VENV (the plots of scripts/bench)"
  "$VENV/bin/pip" install -q --disable-pip-version-check "matplotlib==$MATPLOTLIB_VERSION" \
    || die "installing matplotlib $MATPLOTLIB_VERSION failed"
  touch "$stamp"
}

# helm from the Go module proxy, cached under .cache/bin.
ensure_helm() {
  local bin="$CACHE/bin/helm-$HELM_VERSION"
  if [ ! -x "$bin" ]; then
    say "building helm $HELM_VERSION from the Go module proxy"
    mkdir -p "$CACHE/bin"
    GOBIN="$CACHE/gobin-helm" GOFLAGS=-mod=mod GOCACHE="$CACHE/go-build" GOMODCACHE="$CACHE/go-mod" \
      go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    mv "$CACHE/gobin-helm/helm" "$bin"
  fi
  HELM="$bin"
}

# helm-docs (generates the parameter table of helm/citus-cluster/README.md) from the Go
# module proxy, cached under .cache/bin. Built into a private GOBIN, so two runs at once
# cannot take each other's binary. Sets HELM_DOCS.
ensure_helm_docs() {
  local version=v1.14.2
  local bin="$CACHE/bin/helm-docs-$version" gobin
  if [ ! -x "$bin" ]; then
    say "building helm-docs $version from the Go module proxy"
    mkdir -p "$CACHE/bin"
    gobin=$(mktemp -d "$CACHE/gobin-helm-docs.XXXXXX")
    GOBIN="$gobin" GOFLAGS=-mod=mod GOCACHE="$CACHE/go-build" GOMODCACHE="$CACHE/go-mod" \
      go install "github.com/norwoodj/helm-docs/cmd/helm-docs@$version" || { rm -rf "$gobin"; die "building helm-docs failed"; }
    mv -f "$gobin/helm-docs" "$bin"
    rm -rf "$gobin"
  fi
  HELM_DOCS="$bin"
}

# versitygw (an S3 server with a POSIX backend: the local cluster's and the tests' backup
# repository, docs/backups.md) from the Go module proxy, cached under $CACHE/bin by version.
# Built into a private GOBIN, so two runs at once cannot take each other's binary. Sets
# VERSITYGW.
VERSITYGW_VERSION=v1.8.0
ensure_versitygw() {
  local bin="$CACHE/bin/versitygw-$VERSITYGW_VERSION" gobin started
  if [ ! -x "$bin" ]; then
    say "building versitygw $VERSITYGW_VERSION from the Go module proxy (once per machine)"
    command -v go >/dev/null || die "go is not installed: it builds versitygw"
    mkdir -p "$CACHE/bin"
    gobin=$(mktemp -d "$CACHE/gobin-versitygw.XXXXXX")
    started=$(date +%s)
    GOBIN="$gobin" GOFLAGS=-mod=mod GOCACHE="$CACHE/go-build" GOMODCACHE="$CACHE/go-mod" \
      nice -n 10 go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" \
      || { rm -rf "$gobin"; die "building versitygw failed"; }
    mv -f "$gobin/versitygw" "$bin"
    rm -rf "$gobin"
    say "built versitygw $VERSITYGW_VERSION in $(($(date +%s) - started)) s: $bin"
  fi
  VERSITYGW="$bin"
  export VERSITYGW
}

# The Prometheus Operator's CRDs (PodMonitor, PrometheusRule, ...) for tests/k8s, which checks
# that the API server accepts the chart's monitors: the operator's own YAML files
# (example/prometheus-operator-crd/ of its Go module), downloaded once from the Go module proxy
# into the module cache under $CACHE, never into the repository. Sets
# PROMETHEUS_OPERATOR_CRDS to that directory; fails (returns 1) saying why when it cannot.
PROMETHEUS_OPERATOR_VERSION=v0.85.0
ensure_prometheus_operator_crds() {
  local module=github.com/prometheus-operator/prometheus-operator
  local dir="$CACHE/go-mod/$module@$PROMETHEUS_OPERATOR_VERSION/example/prometheus-operator-crd"
  if [ ! -f "$dir/monitoring.coreos.com_podmonitors.yaml" ]; then
    command -v go >/dev/null || { say "go is not installed: it downloads the Prometheus Operator's CRDs"; return 1; }
    say "downloading $module $PROMETHEUS_OPERATOR_VERSION (its CRDs) from the Go module proxy (once per machine)"
    (cd "$CACHE" && GOFLAGS=-mod=mod GOCACHE="$CACHE/go-build" GOMODCACHE="$CACHE/go-mod" \
      go mod download "$module@$PROMETHEUS_OPERATOR_VERSION") \
      || { say "downloading $module@$PROMETHEUS_OPERATOR_VERSION failed"; return 1; }
    [ -f "$dir/monitoring.coreos.com_podmonitors.yaml" ] \
      || { say "$module@$PROMETHEUS_OPERATOR_VERSION has no $dir/monitoring.coreos.com_podmonitors.yaml"; return 1; }
  fi
  PROMETHEUS_OPERATOR_CRDS="$dir"
  export PROMETHEUS_OPERATOR_CRDS
}

# kube-apiserver and kube-controller-manager (tests/k8s) built from the Go module proxy with
# the pinned module in tests/k8s/tools (go.mod/go.sum), cached under $CACHE/bin by version.
# The build is heavy: it runs niced, once per machine. Sets KUBE_APISERVER and KUBE_CM.
KUBE_VERSION=$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$ROOT/tests/k8s/tools/go.mod" 2>/dev/null)
ensure_kube() {
  [ -n "$KUBE_VERSION" ] || die "tests/k8s/tools/go.mod does not pin k8s.io/kubernetes"
  local dir="$CACHE/bin/kube-$KUBE_VERSION" c minor
  minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
  for c in kube-apiserver kube-controller-manager; do
    [ -x "$dir/$c" ] && continue
    say "building $c $KUBE_VERSION from the Go module proxy (slow, once per machine)"
    mkdir -p "$dir"
    (cd "$ROOT/tests/k8s/tools" &&
      GOFLAGS=-mod=mod GOCACHE="$CACHE/go-build" GOMODCACHE="$CACHE/go-mod" CGO_ENABLED=0 \
        nice -n 19 go build -trimpath -o "$dir/.$c.tmp" -ldflags "-s -w \
          -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
          -X k8s.io/component-base/version.gitMajor=1 \
          -X k8s.io/component-base/version.gitMinor=$minor \
          -X k8s.io/component-base/version.gitTreeState=clean" \
          "k8s.io/kubernetes/cmd/$c") || die "building $c failed"
    mv "$dir/.$c.tmp" "$dir/$c"
  done
  KUBE_APISERVER="$dir/kube-apiserver"
  KUBE_CM="$dir/kube-controller-manager"
}

# Build citus-init (release-like build in build/). Incremental when already configured.
ensure_build() {
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" "$ROOT" >/dev/null
  fi
  ninja -C "$BUILD" >/dev/null || { ninja -C "$BUILD"; die "build failed"; }
}

ensure_base() {
  ensure_apt "${APT_PACKAGES[@]}"
}
