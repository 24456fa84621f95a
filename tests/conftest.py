"""Settings shared by every suite."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI and developers share a busy 2-core machine: a per-example deadline would turn load
# into flaky failures, so examples are bounded by count instead.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
