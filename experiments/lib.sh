# Sourced first by every experiment shell script (default_model/evaluate.sh and gpu/*.sh), after
# its own `set -euo pipefail`. Sets ROOT, the repository, and works from there, so the relative
# paths the scripts pass on (and the commands their results record) name no folder of this
# machine; sets PY, the Python that runs everything: $PYTHON, else python3.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
