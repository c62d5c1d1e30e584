#!/usr/bin/env bash
# The peer of stagehand's push-to-live: a Capistrano-style deploy by hand, no build.
#   shell-deploy.sh ROOT ORIGIN [TIMES_FILE]
# With TIMES_FILE, appends the four $EPOCHREALTIME stamps around fetch, archive|tar and
# switch (bash builtins, no extra process: the breakdown costs the pipeline nothing).
# fetch main into a bare mirror (made on first use), `git archive | tar -x` the commit
# into releases/<id>, write REVISION, switch `current` with symlink + rename.
set -euo pipefail
root=$1
origin=$2
times=${3:-}
t0=$EPOCHREALTIME
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
echo "$sha" >"$root/releases/$id/REVISION"
t2=$EPOCHREALTIME
ln -s "releases/$id" "$root/current.tmp"
mv -T "$root/current.tmp" "$root/current"
if [[ -n $times ]]; then
    echo "$t0 $t1 $t2 $EPOCHREALTIME" >>"$times"
fi
