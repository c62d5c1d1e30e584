#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer + AddressSanitizer): each target in fuzz/ runs for
# SECONDS_PER_TARGET, one after the other, then a summary (executions, corpus size,
# crashes per target). Exits non-zero when a target crashed; the crashing input is in
# fuzz/artifacts/<target>/ and the output says how to reproduce it.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
#
# Targets (fuzz/fuzz_targets/): signature, payload, routing, config.
#
# Setup: `cargo install cargo-fuzz` (from crates.io). cargo-fuzz builds with nightly-only
# flags (-Zsanitizer=address, -Cpasses=sancov-module, …); this machine has only stable
# Rust. The least invasive way that works: RUSTC_BOOTSTRAP=1, set here for the fuzz
# build only, which lets the stable compiler accept those flags. No other toolchain is
# downloaded and the main crate's build never sees it. Stable ships the ASan runtime
# for x86_64-unknown-linux-gnu (librustc-stable_rt.asan.a), which is all -Zsanitizer needs.
#
# Builds in the default cargo-fuzz mode (optimised, with debug assertions and overflow
# checks) with at most 2 jobs; the corpus is kept in fuzz/corpus/<target> between runs
# (git-ignored) and seeded from webhook-samples/ and deploy/.
set -euo pipefail

SECONDS_PER_TARGET=${1:-60}
TARGETS=(signature payload routing config)

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
cd "$top"

command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
}
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS=2

work=$(mktemp -d /tmp/stagehand-fuzz.XXXXXX)
fuzz_pid=""
cleanup() {
    if [ -n "$fuzz_pid" ] && kill -0 "$fuzz_pid" 2>/dev/null; then
        kill -TERM "$fuzz_pid" 2>/dev/null || true
        wait "$fuzz_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Seeds: real deliveries and configs, so the fuzzer starts from deep inputs.
mkdir -p "$work/seeds/payload" "$work/seeds/config" "$work/seeds/signature" "$work/seeds/routing"
for f in webhook-samples/*.json; do
    # The first 4 bytes choose the content-type variant; the rest is the body.
    { printf '\x00\x00\x00\x40'; cat "$f"; } >"$work/seeds/payload/$(basename "$f")"
done
{ printf '\x00\x00\x00\x60'; cat webhook-samples/push-form.txt; } >"$work/seeds/payload/push-form"
cp deploy/stagehand.example.toml "$work/seeds/config/example.toml"
cat >"$work/seeds/config/small.toml" <<'EOF'
[apps.shop]
repo = "/srv/git/shop.git"
github = "acme/shop"
secret_env = "SHOP_WEBHOOK_SECRET"
root = "/srv/shop"
[apps.shop.environments.production]
branch = "main"
[apps.shop.environments.preview]
branch = "feature/*"
seed_from = "production"
EOF
printf 'feature/*\0release/**\0feature/New_Cart!\0pre_view\0main' >"$work/seeds/routing/patterns"
printf 'It'"'"'s a Secret to Everybody\0sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17\0Hello, World!' \
    >"$work/seeds/signature/github-vector"

echo "== building the fuzz targets (cargo fuzz build, RUSTC_BOOTSTRAP=1, -j2)"
cargo fuzz build >"$work/build.log" 2>&1 || {
    tail -30 "$work/build.log"
    exit 1
}

declare -A execs corpus crashes rate
failed=0
for target in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    before=$(find "fuzz/artifacts/$target" -type f | wc -l)
    dict=()
    [ -f "fuzz/dicts/$target.dict" ] && dict=("-dict=fuzz/dicts/$target.dict")
    echo "== fuzzing $target for ${SECONDS_PER_TARGET}s"
    log="$work/$target.log"
    set +e
    timeout $((SECONDS_PER_TARGET + 120)) cargo fuzz run "$target" \
        "fuzz/corpus/$target" "$work/seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1 &
    fuzz_pid=$!
    wait "$fuzz_pid"
    status=$?
    fuzz_pid=""
    set -e
    execs[$target]=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "${execs[$target]}" ] || execs[$target]=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    [ -n "${execs[$target]}" ] || execs[$target]="?"
    rate[$target]=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' "$log" | tail -1)
    corpus[$target]=$(find "fuzz/corpus/$target" -type f | wc -l)
    crashes[$target]=$(($(find "fuzz/artifacts/$target" -type f | wc -l) - before))
    if [ "$status" -ne 0 ] || [ "${crashes[$target]}" -gt 0 ]; then
        failed=1
        echo "!! $target failed (exit $status):"
        grep -E "panicked at|^thread|ERROR: |SUMMARY|Failing input|artifact" "$log" | head -12
        grep -A3 "Failing input" "$log" | tail -2
        echo "   reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $target fuzz/artifacts/$target/<file>"
    fi
done

echo
echo "== fuzz summary: ${SECONDS_PER_TARGET}s per target, $(nproc) cores, $(rustc --version | cut -d' ' -f1-2), cargo-fuzz $(cargo fuzz --version | awk '{print $2}')"
printf '%-10s %14s %10s %8s %8s\n' target executions exec/s corpus crashes
for target in "${TARGETS[@]}"; do
    printf '%-10s %14s %10s %8s %8s\n' "$target" "${execs[$target]}" "${rate[$target]:-?}" \
        "${corpus[$target]}" "${crashes[$target]}"
done
exit "$failed"
