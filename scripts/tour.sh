#!/usr/bin/env bash
# The README's first command: build exactly what scripts/test.sh builds (same package selection, so the same
# feature unification and one shared build in target/), then run `tessera tour` with any arguments given.
# (`cargo run -p tessera-cli` resolves other features for candle & co. than `--workspace --all-targets` does,
# because dev-dependencies of the other crates then drop out, and so recompiles most dependencies.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --all-targets
exec ./target/release/tessera tour "$@"
