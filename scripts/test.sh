#!/usr/bin/env bash
# The project's test command (README, .ci/run): fetch assets, then run every test in release mode,
# including the real-model tests (TESSERA_REQUIRE_ASSETS makes a missing model a failure, not a skip).
set -euo pipefail
cd "$(dirname "$0")/.."
export TESSERA_QUIET=1
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== build (release)"
cargo build --release --workspace --all-targets
echo "== assets"
./target/release/tessera assets fetch
echo "== tests"
TESSERA_REQUIRE_ASSETS=1 RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}" cargo test --release --workspace
