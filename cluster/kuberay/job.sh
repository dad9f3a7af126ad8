#!/usr/bin/env bash
# A pipeline command as a Ray job on a KubeRay cluster (docs/kubernetes.md), run on the head
# node in the checkout that holds this file (/app in the image: the commit it was built from,
# .git included):
#   bash /app/cluster/kuberay/job.sh dvc repro
# runs the command (`dvc repro` when given none), then sends its results back, also after a
# failure (every stage that finished): the outputs and DVC's run cache to the DVC remote
# PIXELGAN_DVC_REMOTE, and dvc.lock with the figures kept in git as one commit on a new
# branch, kuberay/<commit>-<UTC time>, of the repository PIXELGAN_GIT_REMOTE (https, the
# token PIXELGAN_GIT_TOKEN as its password). In a clone: `git pull origin <branch>`, `dvc pull`.
set -euo pipefail

: "${PIXELGAN_RUNS:?Ray storage, e.g. s3://<bucket>/pixelgan/runs}"
: "${PIXELGAN_DVC_REMOTE:?the DVC remote, e.g. s3://<bucket>/pixelgan/dvc}"
: "${PIXELGAN_GIT_REMOTE:?the repository that receives the results, e.g. https://github.com/<you>/pixelgan.git}"
: "${PIXELGAN_GIT_TOKEN:?a token that may push to PIXELGAN_GIT_REMOTE (Secret pixelgan-git, key token)}"
[ $# -gt 0 ] || set -- dvc repro

cd "$(dirname "$0")/../.."
commit=$(git rev-parse --short HEAD) || { echo "job.sh: $PWD is no git checkout: build the image with .git" >&2; exit 1; }
branch="kuberay/$commit-$(date -u +%Y%m%d-%H%M%S)"
# git asks this helper for the password; the token stays out of every command line and log.
helper='!f() { echo username=x-access-token; echo "password=$PIXELGAN_GIT_TOKEN"; }; f'
remote_git() { git -c credential.helper= -c "credential.helper=$helper" "$@"; }
remote_git ls-remote "$PIXELGAN_GIT_REMOTE" >/dev/null  # fail now, not after hours of training

dvc remote add --local --force store "$PIXELGAN_DVC_REMOTE"
dvc remote default --local store

status=0
"$@" || status=$?
if ! dvc push --run-cache && [ "$status" -eq 0 ]; then status=1; fi

git add --all
if git diff --cached --quiet; then
  echo "job.sh: nothing new to commit (every stage was up to date)"
else
  git -c user.name="pixelgan KubeRay job" -c user.email=pixelgan-job@localhost \
    commit --quiet -m "$* on KubeRay (exit status $status)"
  remote_git push "$PIXELGAN_GIT_REMOTE" "HEAD:refs/heads/$branch"
  echo "job.sh: results on branch $branch: git pull origin $branch && dvc pull"
fi
exit "$status"
