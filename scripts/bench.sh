#!/usr/bin/env bash
# The one benchmark command: prints the machine, then runs `cargo bench --bench teamsync`
# (which generates its own data and measures every figure of BENCHMARKS.md in one run).
# Output: stdout, and target/bench/report.md (+ target/bench/results.json from the bench).
# Sizes can be changed through the environment (see benches/teamsync.rs); BENCH_QUICK=1 is
# a smoke run. Needs: Linux (/proc), a Rust toolchain. Takes ~5 minutes on 2 cores after
# the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
report=target/bench/report.md
{
  echo "# teamsync benchmark run"
  echo
  echo "- date (UTC): $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "- cpus (nproc): $(nproc)"
  echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- rustc: $(rustc --version)"
  echo "- command: scripts/bench.sh (cargo bench --bench teamsync)"
  echo
} | tee "$report"
cargo bench --bench teamsync 2> >(tee target/bench/stderr.log >&2) | tee -a "$report"
echo
echo "report: $report"
