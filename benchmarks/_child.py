"""A benchmark's child process and the JSON it prints (shared by `run_all.py` and
`coba_accuracy.py`)."""

import json
import subprocess
from pathlib import Path


def child_json(command, **kwargs):
    """Run `command`; the JSON on the last line of its output, or an error that quotes
    the end of its error output."""
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        tail = [line for line in done.stderr.splitlines() if line.strip()][-1:]
        raise RuntimeError(f"{Path(command[1]).name} exited {done.returncode}: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])
