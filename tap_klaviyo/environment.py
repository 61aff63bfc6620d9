"""Settings from the environment (`--config ENV`): the SDK reads TAP_KLAVIYO_<SETTING> for each setting it knows
(and the variables of a .env file it finds) and ignores any other, so a misspelt variable would silently be no
setting at all. Here each one is named instead."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

ENV_PREFIX = "TAP_KLAVIYO_"
# TAP_KLAVIYO_* variables that are not settings: the SDK's log level, and those of this project's scripts and tests
# (scripts/ci-services, .ci/run, tests/kit.py).
NOT_SETTINGS = frozenset(
    {"LOGLEVEL", "CI_DIR", "PG_PORT", "TEST_PG_DSN", "TARGETS_BIN", "MELTANO", "INTEGRATION_REQUIRED"}
)


def environment_problems(environ: Mapping[str, str], known: set[str]) -> list[str]:
    """Each TAP_KLAVIYO_* variable that names no setting, for `--config ENV` (which reads TAP_KLAVIYO_<SETTING>):
    a misspelt one would otherwise be ignored. Meltano's own variables pass: its extras (TAP_KLAVIYO__SELECT) and
    the settings of plugins that inherit from tap-klaviyo (tap-klaviyo-brand-a: TAP_KLAVIYO_BRAND_A_API_KEY)."""
    suffixes = {name.upper().replace("-", "_"): name for name in known}
    problems = []
    for variable in sorted(environ):
        suffix = variable.removeprefix(ENV_PREFIX)
        if (
            not variable.startswith(ENV_PREFIX)
            or suffix in suffixes
            or suffix in NOT_SETTINGS
            or suffix.startswith("_")
            or any(suffix.endswith(f"_{setting}") for setting in suffixes)
        ):
            continue
        close = difflib.get_close_matches(suffix, suffixes, n=1)
        hint = (
            f"did you mean {ENV_PREFIX}{close[0]}?"
            if close
            else f"remove it (settings: {', '.join(ENV_PREFIX + name for name in sorted(suffixes))})"
        )
        problems.append(f"Environment variable {variable} is no setting of tap-klaviyo (--config ENV): {hint}")
    return problems
