#!/usr/bin/env bash
# The project's test command (README, .ci/run): format, release build, lint, docs, assets, then every test in release
# mode, including the real-model tests (TESSERA_REQUIRE_ASSETS makes a missing model a failure, not a skip).
# The build selection (`--workspace --all-targets`) is the one scripts/tour.sh uses, so the two share one build.
# Each stage prints its wall time; TESSERA_TEST_SKIP="clippy doc" skips stages by name (local use only).
set -euo pipefail
cd "$(dirname "$0")/.."
export TESSERA_QUIET=1
skip=" ${TESSERA_TEST_SKIP:-} "
stage() { # name, command...
  local name=$1; shift
  if [[ $skip == *" $name "* ]]; then echo "== $name (skipped)"; return; fi
  echo "== $name: $*"
  local t0=$SECONDS
  "$@"
  echo "== $name: $((SECONDS - t0)) s"
}
stage fmt cargo fmt --all -- --check
stage build cargo build --release --workspace --all-targets
stage clippy cargo clippy --workspace --all-targets -- -D warnings
stage doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
stage assets ./target/release/tessera assets fetch
stage tests env TESSERA_REQUIRE_ASSETS=1 RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}" cargo test --release --workspace
