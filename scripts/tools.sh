# Sourced by scripts/run-demo and scripts/test: installs what building and testing need,
# each step checking first so that a warm machine skips it, and says how long each took.
# Versions are those measured to work offline on this kind of machine (../shared/BUILDING.md).
# Nothing is compiled here: wasm-bindgen is a library of the workspace's xtask (pinned by
# Cargo.lock), so a fresh machine starts building Runboard at once.

BINARYEN_NPM_VERSION=132.0.0
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$HOME/.cargo/bin:$PWD/target/tools/node_modules/.bin:$PATH"

say() { printf '\n==> %s\n' "$*"; }

# timed "what it does" command...: says what starts, runs it, and says how long it took.
# Its exit status is the command's, so that a failed step fails its caller even where
# `set -e` does not apply (in an `&&` list, say).
timed() {
  local what=$1 started=$SECONDS status=0
  shift
  say "$what"
  "$@" || status=$?
  printf '    (%s: %ss)\n' "$what" $((SECONDS - started))
  return "$status"
}

ensure_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown && return
  timed "adding the wasm32-unknown-unknown target" rustup target add wasm32-unknown-unknown
}

ensure_wasm_opt() {
  # Release builds run wasm-opt. Debian's binaryen breaks hydration silently; npm's works.
  if wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_NPM_VERSION%%.*}"; then return; fi
  mkdir -p target/tools
  timed "installing binaryen $BINARYEN_NPM_VERSION (wasm-opt) from npm" \
    npm install --prefix target/tools --no-save --no-audit --no-fund --loglevel=error "binaryen@$BINARYEN_NPM_VERSION"
}

# The build users run (scripts/run-demo, the Dockerfile) and CI tests: the release site in
# target/site and target/release/runboard. See xtask/src/main.rs.
build_release() {
  local note="release build"
  [ -x target/release/runboard ] || note="first release build: about 15 min on 2 cores; cargo lists each crate as it compiles"
  timed "building Runboard ($note)" cargo xtask build --release
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] && return
  export DEBIAN_FRONTEND=noninteractive
  install_chromium() {
    apt-get install -y --no-install-recommends chromium >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
  }
  timed "installing Debian's chromium for the browser tests" install_chromium
}

ensure_postgres() {
  pg_isready -q -h 127.0.0.1 -p 5432 && return
  say "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  echo "PostgreSQL did not become ready on 127.0.0.1:5432" >&2
  return 1
}

ensure_end2end_packages() {
  # A copy of the lockfile marks what node_modules was installed from.
  cmp -s end2end/package-lock.json end2end/node_modules/.installed-from-lock && return
  install_packages() {
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null)
    cp end2end/package-lock.json end2end/node_modules/.installed-from-lock
  }
  timed "installing the browser tests' npm packages" install_packages
}

# The Kubernetes manifests' check (deploy/check.py): kubectl for `kubectl kustomize` (Debian's
# kubernetes-client where none is installed; the manifests keep to what its older kustomize
# reads) and kubernetes-validate from PyPI, which carries the schemas for offline checks.
ensure_manifest_tools() {
  if ! command -v kubectl >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    install_kubectl() {
      apt-get install -y --no-install-recommends kubernetes-client >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends kubernetes-client >/dev/null; }
    }
    timed "installing Debian's kubectl for the manifests' check" install_kubectl
  fi
  [ -x target/tools/py/bin/python ] && target/tools/py/bin/python -c 'import kubernetes_validate' 2>/dev/null && return
  install_validator() {
    python3 -m venv target/tools/py && target/tools/py/bin/pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
  }
  timed "installing kubernetes-validate (PyPI)" install_validator
}

# The API's OpenAPI document's check: openapi-spec-validator from PyPI, which carries the
# OpenAPI 3.1 schema for offline checks, in the same virtual environment.
ensure_openapi_validator() {
  [ -x target/tools/py/bin/openapi-spec-validator ] && return
  install_openapi_validator() {
    [ -x target/tools/py/bin/python ] || python3 -m venv target/tools/py
    target/tools/py/bin/pip install --quiet --disable-pip-version-check openapi-spec-validator==0.9.0
  }
  timed "installing openapi-spec-validator (PyPI)" install_openapi_validator
}
