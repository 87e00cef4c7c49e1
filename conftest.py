"""Session-wide test settings for everything pytest collects (tests/ and notebooks/)."""

from __future__ import annotations

import os
import tempfile


def pytest_configure() -> None:
    # Kernels that nbval starts for notebooks/ inherit this, so executed notebooks write
    # their runs to a temporary folder, not to notebooks/acc_runs in the repository.
    if "ACC_HOME" not in os.environ:
        os.environ["ACC_HOME"] = tempfile.mkdtemp(prefix="acc-test-home-")
