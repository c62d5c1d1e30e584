#!/usr/bin/env bash
# Faults: stagehand killed with SIGKILL mid-deploy, and a disk that fills during checkout.
#
#   bench/faults.sh [ROUNDS]        (default 30)
#
# Part 1, per round: push a new commit to two environments (builds take 1-2 s), SIGKILL
# the release binary after a random 0-2 s, restart it, and check:
#   - no deploy the dead process left `running` is still `running` (only ones the new
#     process started may be), and the queue drains;
#   - every environment's `current` resolves to a complete release: REVISION names the
#     commit, the file count is the commit's `git ls-tree -r` count + REVISION + the
#     shared links, and every file has the commit's content and mode (client.py
#     verify-release); every other directory in releases/ is complete too;
#   - no build process of the dead server survives, no lock file is left in the mirror;
#   - the next push deploys: `succeeded`, and its commit is live.
# Part 1b: what a kill leaves in windows too short for random kills (a ref lock in the
# mirror, a half-created mirror, a half-deleted release) is planted after a SIGKILL;
# the next push must deploy and the leftovers must be gone.
# Part 2 (root only, else skipped with a message): the environments' root on a 5 MB
# tmpfs; a small commit deploys, then a commit with a 20 MB file must end `failed` with
# a no-space reason, the small release still live, nothing partial in releases/; and
# the next small push deploys again.
#
# Needs git, python3 and jq. Builds target/release/stagehand if missing. Everything is
# in a temp dir removed on exit; the servers, their leftover build processes and the
# tmpfs mount are cleaned up on any exit. Bounded: every wait has a timeout.
set -euo pipefail

ROUNDS=${1:-30}
VENDOR_DIRS=${VENDOR_DIRS:-30} # 50 files each: 1,500 files to check out and clean up
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
bin="$top/target/release/stagehand"
client() { timeout 60 python3 "$here/client.py" "$@"; }
if [ ! -x "$bin" ]; then
    echo "building the release binary"
    (cd "$top" && cargo build --release -j2 --quiet)
fi

work=$(mktemp -d /tmp/stagehand-faults.XXXXXX)
server_pid=""
mnt=""

# Processes whose working directory is inside $work: the servers' build commands.
# They are ours (started by the servers we started); killed by pid.
leftover_pids() {
    local p cwd
    for p in /proc/[0-9]*; do
        cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
        case "$cwd" in "$work"/*) echo "${p#/proc/}" ;; esac
    done
}

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}

cleanup() {
    stop_server
    local p
    for p in $(leftover_pids); do kill -KILL "$p" 2>/dev/null || true; done
    if [ -n "$mnt" ] && mountpoint -q "$mnt"; then
        umount "$mnt" 2>/dev/null || umount -l "$mnt" || true
    fi
    if [ -n "${FAULTS_KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM

secret="faults-secret-$RANDOM$RANDOM"
export SHOP_WEBHOOK_SECRET="$secret" STAGEHAND_API_TOKEN="faults-token"
export GIT_AUTHOR_NAME=Faults GIT_AUTHOR_EMAIL=faults@example.com
export GIT_COMMITTER_NAME=Faults GIT_COMMITTER_EMAIL=faults@example.com

# start_server CONFIG: starts the release binary, sets server_pid and url.
start_server() {
    local config=$1 out="$work/server.out"
    : >"$out"
    "$bin" serve --config "$config" >"$out" 2>>"$work/server.err" &
    server_pid=$!
    url=""
    for _ in $(seq 1 100); do
        url=$(sed -n 's/^stagehand listening on //p' "$out")
        [ -n "$url" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    tail -5 "$work/server.err"
    echo "FAIL: the server did not start"
    exit 1
}

now_ms() { date +%s%3N; }

# make_repo DIR VENDOR_DIRS: main and develop with a few directories, an executable, a symlink, and
# a build-seconds file the build command reads.
make_repo() {
    local repo=$1 vendor_dirs=$2
    git init -q -b main "$repo"
    mkdir -p "$repo/src/lib" "$repo/public/css" "$repo/bin"
    for i in $(seq 1 12); do echo "module $i" >"$repo/src/lib/m$i.txt"; done
    # Enough files that checkout and cleanup take long enough to be killed in.
    local d
    for d in $(seq 1 "$vendor_dirs"); do
        mkdir -p "$repo/vendor/pkg$d"
        for i in $(seq 1 50); do echo "package $d file $i" >"$repo/vendor/pkg$d/f$i.php"; done
    done
    echo "body {}" >"$repo/public/css/site.css"
    printf '#!/bin/sh\necho hi\n' >"$repo/bin/run"
    chmod +x "$repo/bin/run"
    ln -s public/css/site.css "$repo/style.css"
    echo 0.1 >"$repo/build-seconds"
    git -C "$repo" add -A
    git -C "$repo" commit -q -m "Initial"
    git -C "$repo" branch develop
}

# commit_on REPO BRANCH BUILD_SECONDS TAG: a new commit that changes, adds and removes files.
commit_on() {
    local repo=$1 branch=$2 seconds=$3 tag=$4
    git -C "$repo" checkout -q "$branch"
    echo "$tag" >"$repo/src/lib/m$((RANDOM % 12 + 1)).txt"
    echo "$tag" >"$repo/src/$tag.txt"
    echo "$seconds" >"$repo/build-seconds"
    git -C "$repo" add -A
    git -C "$repo" commit -q -m "$tag"
    git -C "$repo" rev-parse HEAD
}

####################################################################################
# Part 1: SIGKILL mid-deploy
####################################################################################
repo="$work/repo"
make_repo "$repo" "$VENDOR_DIRS"
root="$work/srv"
config="$work/stagehand.toml"
cat >"$config" <<EOF
[server]
listen = "127.0.0.1:0"
state_dir = "$work/state"
max_parallel_deploys = 2
shutdown_grace = "2s"

[apps.shop]
repo = "$repo"
github = "acme/shop"
secret_env = "SHOP_WEBHOOK_SECRET"
root = "$root"
keep_releases = 3
shared = ["storage/", ".env"]
build = ["sleep \"\$(cat build-seconds)\""]

[apps.shop.environments.staging]
branch = "develop"

[apps.shop.environments.production]
branch = "main"
EOF
declare -A branch_of=([staging]=develop [production]=main)
envs=(staging production)

echo "== faults part 1: $ROUNDS rounds of SIGKILL at a random moment of a deploy (builds 1-2 s)"
echo "machine: $(nproc) cores, $(uname -sr); binary: $bin"
violations=0
violation() {
    echo "  VIOLATION: $*"
    violations=$((violations + 1))
}
declare -A tally=()
count() { tally[$1]=$((${tally[$1]:-0} + 1)); }

start_server "$config"
# First deploys, so every environment has something live before the kills start.
for env in "${envs[@]}"; do
    branch=${branch_of[$env]}
    sha=$(git -C "$repo" rev-parse "$branch")
    id=$(client push "$url" "$secret" "$branch" "$sha" "$(printf '0%.0s' {1..40})")
    read -r status _ < <(client wait "$url" "$id" 30)
    [ "$status" = succeeded ] || { echo "FAIL: the first deploy of $env ended $status"; exit 1; }
done

# check_environments LABEL: every current (and every release on disk) complete.
check_environments() {
    local env rel live out dir
    for env in "${envs[@]}"; do
        live=$(readlink "$root/$env/current" 2>/dev/null) || { violation "$env: no current"; continue; }
        [ -d "$root/$env/$live" ] || { violation "$env: current → $live, which does not exist"; continue; }
        out=$(client verify-release "$repo" "$root/$env/$live" 2) || violation "$env: live release incomplete: $out"
        for dir in "$root/$env/releases"/*; do
            rel=$(basename "$dir")
            [ "releases/$rel" = "$live" ] && continue
            out=$(client verify-release "$repo" "$dir" 2) || violation "$env: release $rel on disk incomplete: $out"
        done
        for dir in "$root/$env"/.current.tmp-*; do
            [ -e "$dir" ] || [ -L "$dir" ] || continue
            count "leftover temporary current links"
        done
    done
}

for round in $(seq 1 "$ROUNDS"); do
    declare -A killed_id=() sha_of=()
    seconds="1.$((RANDOM % 10))"
    for env in "${envs[@]}"; do
        branch=${branch_of[$env]}
        before=$(git -C "$repo" rev-parse "$branch")
        sha_of[$env]=$(commit_on "$repo" "$branch" "$seconds" "r$round-$env")
        killed_id[$env]=$(client push "$url" "$secret" "$branch" "${sha_of[$env]}" "$before")
    done
    # A delay uniform over 0-2 s after the push, except every third round, which aims
    # at the end of the build (from 5 ms before to 40 ms after, by the log's clock):
    # switch, after_release and cleanup take milliseconds, and a uniform delay almost
    # never lands in them.
    pushed_ms=$(now_ms)
    if [ $((round % 3)) = 0 ] && build_start=$(client wait-stage "$url" "${killed_id[production]}" build 10); then
        build_ms=$(awk -v s="$seconds" 'BEGIN { printf "%d", s * 1000 }')
        wait_ms=$((build_start + build_ms - 5 + RANDOM % 45 - $(now_ms)))
        [ "$wait_ms" -gt 0 ] || wait_ms=0
        sleep "$(printf '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000)))"
        aim="aimed at the end of the build, "
    else
        wait_ms=$((RANDOM % 2001))
        sleep "$(printf '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000)))"
        aim=""
    fi
    delay_ms=$(($(now_ms) - pushed_ms))
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    restarted_ms=$(now_ms)
    start_server "$config"

    line="round $round: SIGKILL ${aim}${delay_ms} ms after the push;"
    for env in "${envs[@]}"; do
        deploy=$(client get "$url" "${killed_id[$env]}")
        status=$(jq -r .status <<<"$deploy")
        started=$(jq -r '.started_at // ""' <<<"$deploy")
        stage=$(jq -r 'first(.stages[] | select(.status == "interrupted") | .name)
            // ("between stages, after " + ((.stages | last | .name) // "none"))' <<<"$deploy")
        # Running is fine only when the new process started it (it was still queued).
        if [ "$status" = running ]; then
            started_ms=$(date -d "$started" +%s%3N)
            if [ "$started_ms" -ge "$restarted_ms" ]; then
                status="queued at the kill, started by the new process"
            else
                violation "$env: deploy ${killed_id[$env]} still running from the dead process"
            fi
        fi
        case "$status" in
            interrupted) count "interrupted in $stage"; line="$line $env interrupted in $stage," ;;
            *) count "$status"; line="$line $env $status," ;;
        esac
    done
    client drain "$url" 30 || violation "the queue did not drain after the restart"
    for env in "${envs[@]}"; do
        final=$(client get "$url" "${killed_id[$env]}" | jq -r .status)
        case "$final" in
            queued | running) violation "$env: deploy ${killed_id[$env]} still $final after the drain" ;;
        esac
    done
    stale=$(client deploys "$url" 200 | jq '[.deploys[] | select(.status == "running" or .status == "queued")] | length')
    [ "$stale" = 0 ] || violation "$stale deploys queued or running after the drain"
    check_environments
    survivors=$(leftover_pids | wc -l)
    [ "$survivors" = 0 ] || violation "$survivors build processes of the dead server survived"
    locks=$(find "$work/state/mirrors" -name '*.lock' | wc -l)
    [ "$locks" = 0 ] || violation "$locks lock files left in the mirror: $(find "$work/state/mirrors" -name '*.lock' | head -3)"

    # The next push deploys.
    env=${envs[$((round % 2))]}
    branch=${branch_of[$env]}
    before=$(git -C "$repo" rev-parse "$branch")
    next_sha=$(commit_on "$repo" "$branch" 0.1 "r$round-$env-next")
    id=$(client push "$url" "$secret" "$branch" "$next_sha" "$before")
    t0=$(now_ms)
    IFS=$'\t' read -r status reason < <(client wait "$url" "$id" 30)
    took=$(($(now_ms) - t0))
    if [ "$status" != succeeded ]; then
        violation "$env: the next push ended $status: $reason"
    elif [ "$(cat "$root/$env/current/REVISION")" != "$next_sha" ]; then
        violation "$env: the next push succeeded but $(cat "$root/$env/current/REVISION") is live"
    fi
    echo "$line recovered; next push to $env $status in ${took} ms ($(client stages "$url" "$id")); violations so far $violations"
    unset killed_id sha_of
done
stop_server
echo "part 1 tally: $ROUNDS rounds, $((ROUNDS * 2)) deploys killed at a random moment, violations: $violations"
for key in "${!tally[@]}"; do echo "  $key: ${tally[$key]}"; done | sort

####################################################################################
# Part 1b: what a kill leaves in windows of microseconds to milliseconds, which random
# kills practically never hit: planted after a SIGKILL, then the next push must deploy.
####################################################################################
echo "== faults part 1b: crash leftovers planted after a SIGKILL (windows too short for random kills)"
mirror="$work/state/mirrors/shop.git"
# plant NAME: leaves what a kill in that window leaves; the server is down meanwhile.
plant() {
    case "$1" in
        "a ref lock (kill while a fetch updates refs/heads/develop)")
            git --git-dir="$mirror" rev-parse develop >"$mirror/refs/heads/develop.lock"
            : >"$mirror/packed-refs.lock" ;;
        "a half-created mirror (kill during the first fetch's init)")
            mv "$mirror" "$work/state/mirror-aside"
            mkdir -p "$mirror/objects/pack" "$mirror/refs/heads" ;;
        "a half-deleted release (kill during cleanup's delete)")
            rel=$(readlink "$root/staging/current")
            cp -a "$root/staging/$rel" "$root/staging/releases/.removing-20000101T000000Z-0000000"
            rm -rf "$root/staging/releases/.removing-20000101T000000Z-0000000/src" ;;
    esac
}
for leftover in "a ref lock (kill while a fetch updates refs/heads/develop)" \
    "a half-created mirror (kill during the first fetch's init)" \
    "a half-deleted release (kill during cleanup's delete)"; do
    start_server "$config"
    kill -KILL "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    plant "$leftover"
    start_server "$config"
    before=$(git -C "$repo" rev-parse develop)
    sha=$(commit_on "$repo" develop 0.1 "planted-$RANDOM")
    id=$(client push "$url" "$secret" develop "$sha" "$before")
    IFS=$'\t' read -r status reason < <(client wait "$url" "$id" 30)
    left=$(find "$mirror" "$root/staging/releases" -maxdepth 3 \( -name '*.lock' -o -name '.removing-*' \) | wc -l)
    echo "$leftover: next push $status; leftovers after it: $left"
    [ "$status" = succeeded ] || violation "after $leftover the next push ended $status: $reason"
    [ "$left" = 0 ] || violation "after $leftover, $left lock/.removing files are still there"
    [ "$(cat "$root/staging/current/REVISION")" = "$sha" ] || violation "after $leftover, $sha is not live"
    check_environments
    stop_server
done

####################################################################################
# Part 2: disk full during checkout
####################################################################################
echo "== faults part 2: disk full during checkout"
if [ "$(id -u)" != 0 ]; then
    echo "part 2 skipped: mounting a tmpfs needs root"
else
    repo2="$work/repo2"
    make_repo "$repo2" 0 # small: a few files fit a 5 MB tmpfs (a page each)
    mnt="$work/small"
    mkdir -p "$mnt"
    mount -t tmpfs -o size=5m tmpfs "$mnt"
    config2="$work/stagehand-small.toml"
    cat >"$config2" <<EOF
[server]
listen = "127.0.0.1:0"
state_dir = "$work/state2"

[apps.shop]
repo = "$repo2"
github = "acme/shop"
secret_env = "SHOP_WEBHOOK_SECRET"
root = "$mnt"
shared = ["storage/", ".env"]
build = ["true"]

[apps.shop.environments.production]
branch = "main"
EOF
    zeros=$(printf '0%.0s' {1..40})
    start_server "$config2"
    small=$(git -C "$repo2" rev-parse main)
    id=$(client push "$url" "$secret" main "$small" "$zeros")
    read -r status _ < <(client wait "$url" "$id" 30)
    [ "$status" = succeeded ] || violation "the small first deploy ended $status"
    live_before=$(readlink "$mnt/production/current")

    head -c 20000000 /dev/urandom >"$repo2/big.bin"
    git -C "$repo2" add big.bin
    git -C "$repo2" commit -q -m "A 20 MB file"
    big=$(git -C "$repo2" rev-parse HEAD)
    id=$(client push "$url" "$secret" main "$big" "$small")
    IFS=$'\t' read -r status reason < <(client wait "$url" "$id" 60)
    echo "deploy of a 20 MB tree onto a 5 MB disk: $status: $reason"
    [ "$status" = failed ] || violation "the deploy onto a full disk ended $status"
    grep -qi "no space" <<<"$reason" || violation "the reason does not say the disk is full: $reason"
    [ "$(readlink "$mnt/production/current")" = "$live_before" ] ||
        violation "current moved: $(readlink "$mnt/production/current")"
    out=$(client verify-release "$repo2" "$mnt/production/$live_before" 2) ||
        violation "the live release is damaged: $out"
    # `.trees/` holds checkout manifests (src/pipeline/recycle.rs), not a release.
    releases_left=$(find "$mnt/production/releases" -mindepth 1 -maxdepth 1 ! -name .trees | wc -l)
    [ "$releases_left" = 1 ] || violation "releases/ holds $releases_left entries: $(ls "$mnt/production/releases")"
    echo "after the failure: current → $live_before; releases/: $(ls "$mnt/production/releases" | tr '\n' ' '); disk use $(df --output=used -h "$mnt" | tail -1 | tr -d ' ')"

    git -C "$repo2" rm -q big.bin
    git -C "$repo2" commit -q -m "Without the big file"
    fixed=$(git -C "$repo2" rev-parse HEAD)
    id=$(client push "$url" "$secret" main "$fixed" "$big")
    IFS=$'\t' read -r status reason < <(client wait "$url" "$id" 30)
    echo "the next small push: $status"
    [ "$status" = succeeded ] || violation "the next small push ended $status: $reason"
    stop_server
fi

echo "== faults: violations: $violations"
[ "$violations" = 0 ]
