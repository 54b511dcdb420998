#!/usr/bin/env bash
# Plan in CI (a pull request): save the plan for the apply on merge, write it as Markdown for
# review, and add that Markdown to the job summary ($GITHUB_STEP_SUMMARY) when there is one.
#
#   scripts/ci-plan.sh [topoform plan arguments...]     e.g.  -f topology/   or   -f t.yaml --state defs.json
#
# Environment (all optional):
#   TOPOFORM                 the command to run (default: topoform; e.g. ".venv/bin/topoform")
#   TOPOFORM_PLAN_OUT        where to save the plan for 'topoform apply PLANFILE' (default topoform.plan.json)
#   TOPOFORM_PLAN_MARKDOWN   where to write the Markdown plan (default topoform-plan.md)
#   TOPOFORM_PLAN_FILES      topology files or folders, separated by spaces (each becomes -f PATH)
#   GITHUB_STEP_SUMMARY      GitHub Actions' job summary file: the Markdown plan is appended to it
#   GITHUB_OUTPUT            GitHub Actions' step outputs: exitcode, changes, blocked, plan-file, markdown-file
#
# Exit status: 0 no changes or changes (a pull request may change the topology), 3 blocked
# changes (the apply would refuse: fail the check), 1 error (the message is in the summary too).
set -uo pipefail

read -r -a cmd <<< "${TOPOFORM:-topoform}"
out="${TOPOFORM_PLAN_OUT:-topoform.plan.json}"
md="${TOPOFORM_PLAN_MARKDOWN:-topoform-plan.md}"
files=()
for f in ${TOPOFORM_PLAN_FILES:-}; do files+=(-f "$f"); done

errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
"${cmd[@]}" plan ${files[@]+"${files[@]}"} "$@" --detailed-exitcode --format markdown --out "$out" \
  > "$md" 2> "$errors"
code=$?
cat "$errors" >&2

case "$code" in
  0) changes=false; blocked=false ;;
  2) changes=true; blocked=false ;;
  3) changes=true; blocked=true ;;
  *) changes=false; blocked=false
     {
       echo "### topoform plan failed"
       echo
       echo '```text'
       grep -v '^Saved the plan' "$errors" || true
       echo '```'
     } > "$md"
     ;;
esac

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  cat "$md" >> "$GITHUB_STEP_SUMMARY"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    echo "exitcode=$code"
    echo "changes=$changes"
    echo "blocked=$blocked"
    echo "plan-file=$out"
    echo "markdown-file=$md"
  } >> "$GITHUB_OUTPUT"
fi

case "$code" in
  0|2) exit 0 ;;
  3) exit 3 ;;
  *) exit 1 ;;
esac
