"""The release and shutdown deadlines add up, for every setting the worker accepts."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.deadlines import MIN_GRACE_SECONDS, derive
from worker.settings import Settings, SettingsError, load_settings

seconds = st.floats(min_value=0.1, max_value=3600, allow_nan=False)


@given(rebalance=seconds, heartbeat=seconds, session=seconds, drain=seconds)
def test_every_accepted_setting_fits_its_phases_inside_the_rebalance_timeout(
    rebalance: float, heartbeat: float, session: float, drain: float
) -> None:
    """Grace + interrupt wait + kill wait + commit + one heartbeat never exceed the rebalance
    timeout, the grace is at least a second, and the shutdown bound covers the drain and every
    phase after it; settings where that cannot hold are refused, naming the variables."""
    environ = {
        "CONVOAI_KAFKA_REBALANCE_TIMEOUT_SECONDS": repr(rebalance),
        "CONVOAI_KAFKA_HEARTBEAT_INTERVAL_SECONDS": repr(heartbeat),
        "CONVOAI_KAFKA_SESSION_TIMEOUT_SECONDS": repr(session),
        "CONVOAI_DRAIN_GRACE_SECONDS": repr(drain),
        "CONVOAI_ENV_FILE": "",
    }
    try:
        load_settings(environ)
    except SettingsError as error:
        refusal = str(error)
    else:
        refusal = ""
    if refusal:
        assert "CONVOAI_" in refusal  # the worker says which variable is wrong
        return
    deadlines = derive(rebalance, heartbeat, drain)
    assert deadlines.revoke_grace >= MIN_GRACE_SECONDS
    assert deadlines.release_bound + heartbeat <= rebalance + 1e-9
    phases = deadlines.interrupt_wait + deadlines.kill_wait + deadlines.commit
    assert deadlines.shutdown_bound >= drain + phases
    assert deadlines.termination_grace >= math.ceil(deadlines.shutdown_bound)


@pytest.mark.parametrize(("rebalance", "heartbeat"), [(3.0, 0.5), (5.0, 3.0), (30.0, 29.0)])
def test_settings_that_leave_no_grace_are_refused_with_the_minimum(
    rebalance: float, heartbeat: float
) -> None:
    """The refusal names both variables and the smallest rebalance timeout that would do."""
    values = {
        "kafka_rebalance_timeout_seconds": rebalance,
        "kafka_heartbeat_interval_seconds": heartbeat,
        "kafka_session_timeout_seconds": max(3 * heartbeat, 1.0),
    }
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(values, Settings)
    text = str(refused.value)
    assert "CONVOAI_KAFKA_REBALANCE_TIMEOUT_SECONDS" in text
    assert "CONVOAI_KAFKA_HEARTBEAT_INTERVAL_SECONDS" in text
    needed = float(text.split("must be at least ")[1].split(" s", maxsplit=1)[0])
    assert derive(needed, heartbeat, 0).revoke_grace >= MIN_GRACE_SECONDS
    assert derive(needed - 0.5, heartbeat, 0).revoke_grace < MIN_GRACE_SECONDS
