# Sourced by scripts/run-demo and scripts/test: installs what building and testing need,
# each step checking first so that a warm machine skips it. Versions are those measured
# to work offline on this kind of machine (see ../shared/BUILDING.md).

CARGO_LEPTOS_VERSION=0.3.10
BINARYEN_NPM_VERSION=132.0.0
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$HOME/.cargo/bin:$PWD/target/tools/node_modules/.bin:$PATH"

say() { printf '\n==> %s\n' "$*"; }

ensure_wasm_target() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown && return
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
}

ensure_cargo_leptos() {
  if cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION"; then return; fi
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (10-15 min on 2 cores, once)"
  # no_downloads: a missing tool is named instead of fetched from GitHub, which is unreachable here.
  cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION" --features no_downloads
}

ensure_wasm_bindgen() {
  # cargo-leptos calls the CLI without checking it matches the crate: pin it to Cargo.lock's.
  local want
  want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
  if wasm-bindgen --version 2>/dev/null | grep -q " $want"; then return; fi
  say "installing wasm-bindgen-cli $want (about 4 min, once)"
  # Its own lockfile wants crate versions this registry lacks: resolve afresh, within our rustc.
  CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install wasm-bindgen-cli --version "$want"
}

ensure_wasm_opt() {
  # Release builds always run wasm-opt. Debian's binaryen breaks hydration silently; npm's works.
  if wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_NPM_VERSION%%.*}"; then return; fi
  say "installing binaryen $BINARYEN_NPM_VERSION (wasm-opt) from npm"
  mkdir -p target/tools
  npm install --prefix target/tools --no-save --no-audit --no-fund "binaryen@$BINARYEN_NPM_VERSION" >/dev/null
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] && return
  say "installing Debian's chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >/dev/null \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
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
  say "installing the browser tests' npm packages"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null)
  cp end2end/package-lock.json end2end/node_modules/.installed-from-lock
}
