#!/usr/bin/env bash
# The peers of bench/real_repo.sh: Capistrano-style deploys by hand, no build, with the
# cleanup a real one does (old releases deleted, the newest KEEP kept).
#   shell-deploy-real.sh full|shallow ROOT ORIGIN KEEP [TIMES_FILE]
# full:    fetch main into a bare mirror (made on first use), `git archive | tar -x` the
#          commit into releases/<id>, REVISION, switch (ln -s + mv -T), rm -rf old releases.
# shallow: `git clone --depth 1 --branch main` into releases/<id> (how Coolify clones),
#          REVISION, switch, rm -rf old releases.
# With TIMES_FILE, appends five $EPOCHREALTIME stamps around fetch, write, switch, cleanup
# (for shallow, fetch and write are one step: its fetch stamp equals its start).
set -euo pipefail
mode=$1
root=$2
origin=$3
keep=$4
times=${5:-}
t0=$EPOCHREALTIME
mkdir -p "$root/releases"
case $mode in
    full)
        mirror=$root/mirror.git
        if [[ ! -d $mirror ]]; then
            git init --bare -q "$mirror"
            git --git-dir "$mirror" remote add origin "$origin"
        fi
        git --git-dir "$mirror" fetch -q --no-tags origin +refs/heads/main:refs/heads/main
        sha=$(git --git-dir "$mirror" rev-parse refs/heads/main)
        t1=$EPOCHREALTIME
        id="$(date -u +%Y%m%dT%H%M%S%NZ)-${sha:0:7}"
        mkdir -p "$root/releases/$id"
        git --git-dir "$mirror" archive "$sha" | tar -x -C "$root/releases/$id"
        ;;
    shallow)
        t1=$t0
        id="$(date -u +%Y%m%dT%H%M%S%NZ)"
        git clone -q --depth 1 --branch main "$origin" "$root/releases/$id"
        sha=$(git -C "$root/releases/$id" rev-parse HEAD)
        ;;
    *) echo "mode must be full or shallow" >&2; exit 2 ;;
esac
echo "$sha" >"$root/releases/$id/REVISION"
t2=$EPOCHREALTIME
ln -s "releases/$id" "$root/current.tmp"
mv -T "$root/current.tmp" "$root/current"
t3=$EPOCHREALTIME
# Release ids sort by time: everything but the newest KEEP goes.
mapfile -t old < <(ls -1 "$root/releases" | sort | head -n -"$keep")
for r in "${old[@]}"; do
    rm -rf "${root:?}/releases/$r"
done
if [[ -n $times ]]; then
    echo "$t0 $t1 $t2 $t3 $EPOCHREALTIME" >>"$times"
fi
