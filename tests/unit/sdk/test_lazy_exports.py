"""`plugwire/__init__.py` imports host-side names lazily; every public name still resolves."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procguard import SRC


def test_every_name_in_all_resolves_and_host_modules_load_only_on_first_use() -> None:
    code = (
        "import sys, plugwire\n"
        "assert 'plugwire._manager' not in sys.modules\n"
        "missing = [n for n in plugwire.__all__ if getattr(plugwire, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert 'plugwire._manager' in sys.modules\n"
        "assert set(plugwire.__all__) <= set(dir(plugwire))\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(SRC)}, capture_output=True, timeout=30, check=False
    )
    assert result.stdout.decode().strip() == "ok", result.stderr.decode()
