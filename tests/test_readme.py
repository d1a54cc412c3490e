"""The README's "register your own environment" example runs as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_register_env_example_runs():
    text = README.read_text()
    match = re.search(r"<!-- example: register-env .*?-->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its register-env example"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 30
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("-> 1.0")
