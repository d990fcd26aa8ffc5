#!/usr/bin/env bash
# Everything `make test` checks after lint: generated code is current, deployment
# manifests render and validate, and the pytest suite passes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv

for check in scripts/check-protos.sh scripts/check-deploy.sh; do
  if [[ -f "$check" ]]; then
    echo "== $check"
    bash "$check"
  fi
done

echo "== pytest"
# Two pytest-xdist workers: most of the suite waits on child processes, servers and sleeps,
# so two overlap well on a 2-core box. loadfile keeps each test file (and each directory
# named in tests/conftest.py SAME_WORKER_DIRS) in one worker. PYTEST_WORKERS=0: serial.
set +e
"$VENV/bin/pytest" -q -n "${PYTEST_WORKERS:-2}" --dist loadfile tests
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $rc
