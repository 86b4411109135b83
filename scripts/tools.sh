# Sourced by scripts/run-demo and scripts/test: installs what building and testing need,
# each step checking first so that a warm machine skips it, and says how long each took.
# Versions are those measured to work offline on this kind of machine (../shared/BUILDING.md).
# wasm-bindgen is a library of the workspace's xtask (pinned by Cargo.lock); the one tool
# compiled here is cargo-deny, once per machine (about 8 min on 2 cores).

BINARYEN_NPM_VERSION=132.0.0
CARGO_DENY_VERSION=0.20.2
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
  timed "installing kubernetes-validate (PyPI)" pip_install_tool kubernetes-validate==1.37.0
}

# Installs the Python packages `$@` into the tools' virtual environment, target/tools/py,
# made first where there is none. Made at its real path: its scripts name it, and they must
# still run when target/ is CI's build cache reached through another clone's link (.ci/run).
pip_install_tool() {
  [ -x target/tools/py/bin/python ] || python3 -m venv "$(realpath -m target/tools/py)"
  target/tools/py/bin/pip install --quiet --disable-pip-version-check "$@"
}

# The API's OpenAPI document's check: openapi-spec-validator from PyPI, which carries the
# OpenAPI 3.1 schema for offline checks, in the same virtual environment.
ensure_openapi_validator() {
  [ -x target/tools/py/bin/openapi-spec-validator ] && return
  timed "installing openapi-spec-validator (PyPI)" pip_install_tool openapi-spec-validator==0.9.0
}

# The dependency audit (deny.toml): licenses, bans, sources and RustSec's advisories.
ensure_cargo_deny() {
  cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION" && return
  timed "installing cargo-deny $CARGO_DENY_VERSION (crates.io; compiled once per machine)" \
    cargo install --quiet --locked "cargo-deny@$CARGO_DENY_VERSION"
}

# Checks the dependency tree against deny.toml. The advisories need RustSec's database,
# which cargo-deny fetches from GitHub; where GitHub cannot be reached, the copy fetched last
# (or one cloned from $RUNBOARD_ADVISORY_DB, a copy of github.com/rustsec/advisory-db) is used
# and its date said; with neither, the advisories are reported as not checked.
check_dependencies() {
  cargo deny --locked check bans licenses sources 2>&1 | grep -v '^warning\[duplicate\]' | tail -n 3
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  # Where cargo-deny keeps its copy of https://github.com/RustSec/advisory-db.
  local log=target/advisories.log db="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691"
  mkdir -p target
  if cargo deny --locked check advisories >"$log" 2>&1; then
    printf '%s (RustSec database of %s)\n' "$(tail -n 1 "$log")" "$(git -C "$db" log -1 --format=%cs)"
    return
  fi
  if ! grep -q "failed to fetch advisory database" "$log"; then cat "$log"; return 1; fi
  if [ ! -d "$db/.git" ] && [ -n "${RUNBOARD_ADVISORY_DB:-}" ]; then
    git clone --quiet --depth 1 "$RUNBOARD_ADVISORY_DB" "$db"
  fi
  if [ ! -d "$db/.git" ]; then
    say "WARNING: advisories NOT checked: RustSec's database cannot be fetched from GitHub here; set RUNBOARD_ADVISORY_DB to a copy of it"
    return
  fi
  say "GitHub unreachable: advisories checked against RustSec's database of $(git -C "$db" log -1 --format=%cs)"
  cargo deny --locked --offline check advisories 2>&1 | tail -n 20
  return "${PIPESTATUS[0]}"
}

# The action's data has one owner (core/src/actions/store/): fails, naming file and line,
# where a statement writing one of the action's tables is elsewhere in core/src, where
# anything but the transition writes `action.state`, or where a transaction begins with
# sqlx's `begin` (deferred on SQLite) rather than the dialect layer's `begin_write`.
check_action_data_owner() {
  local owner=core/src/actions/store transition=core/src/actions/store/transition.rs
  local tables='(action|action_entity|action_chunk|action_approval|entity_hold|action_lease)'
  local found status=0
  found=$(grep -rnE "(INSERT INTO|UPDATE|DELETE FROM)[[:space:]]+$tables([^a-z_]|\$)" core/src \
    | grep -v "^$owner/" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
  if [ -n "$found" ]; then
    printf '%s\n' "$found"
    echo "these write the action's tables outside $owner/; move them into it" >&2
    status=1
  fi
  found=$(grep -rnE "UPDATE[[:space:]]+action[[:space:]]+SET[[:space:]]+state([^_]|\$)" core/src \
    | grep -v "^$transition:" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
  if [ -n "$found" ]; then
    printf '%s\n' "$found"
    echo "these write action.state outside the transition ($transition)" >&2
    status=1
  fi
  # `pool` alone is the concrete pool inside `on_pool!`; `self.pool.begin()` and the like
  # are the dialect layer's, which begins as begin_write does.
  found=$(grep -rnE "(^|[^.[:alnum:]_])pool\.begin\(\)" core/src | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true)
  if [ -n "$found" ]; then
    printf '%s\n' "$found"
    echo "these begin a transaction with sqlx's begin; use begin_write (BEGIN IMMEDIATE on SQLite)" >&2
    status=1
  fi
  return "$status"
}

# The house's size rules (issue #32), each failure naming what broke it: no tracked Rust or
# TypeScript source over 600 lines, and the server's integration tests in at most three
# binaries (server/tests/it/ and the ones that must run alone), since each binary links the
# whole server again.
MAX_SOURCE_LINES=600
MAX_SERVER_TEST_BINARIES=3
check_house() {
  local status=0 lines file binaries
  while read -r lines file; do
    [ "$file" = total ] && continue
    if [ "$lines" -gt "$MAX_SOURCE_LINES" ]; then
      echo "$file: $lines lines, over $MAX_SOURCE_LINES: split it into modules by topic" >&2
      status=1
    fi
  done < <(git ls-files -z '*.rs' '*.ts' | xargs -0 wc -l)
  # Cargo makes a test binary of each server/tests/*.rs and each server/tests/*/main.rs.
  binaries=$(find server/tests -maxdepth 1 -name '*.rs'; find server/tests -mindepth 2 -maxdepth 2 -name main.rs)
  if [ "$(wc -l <<<"$binaries")" -gt "$MAX_SERVER_TEST_BINARIES" ]; then
    echo "server/tests builds $(wc -l <<<"$binaries") test binaries, over $MAX_SERVER_TEST_BINARIES: add tests to server/tests/it/ instead:" $binaries >&2
    status=1
  fi
  [ "$status" -eq 0 ] || return 1
  echo "no source over $MAX_SOURCE_LINES lines; server/tests builds $(wc -l <<<"$binaries") test binaries"
}
