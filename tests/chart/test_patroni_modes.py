"""Durability and DCS-outage defaults the chart hands citus-init: SYNCHRONOUS_MODE auto (quorum
with Citus, Patroni's own choice) and FAILSAFE_MODE true; other values pass through, the schema
refuses what citus-init would refuse."""
import pytest

from conftest import render, render_error
from test_render import env


def statefulsets(r):
    return r.all("StatefulSet")


def test_defaults_are_quorum_auto_and_failsafe():
    for sts in statefulsets(render()):
        e = env(sts)
        assert e["SYNCHRONOUS_MODE"] == "auto"
        assert e["FAILSAFE_MODE"] == "true"


@pytest.mark.parametrize("mode,expected", [("quorum", "quorum"), (False, "false"),
                                           (True, "true")])
def test_synchronous_mode_passes_through(mode, expected):
    r = render({"patroni": {"synchronousMode": mode, "failsafeMode": False}})
    for sts in statefulsets(r):
        assert env(sts)["SYNCHRONOUS_MODE"] == expected
        assert env(sts)["FAILSAFE_MODE"] == "false"


@pytest.mark.parametrize("values", [{"patroni": {"synchronousMode": "strict"}},
                                    {"patroni": {"failsafeMode": "yes"}}])
def test_schema_refuses_other_modes(values):
    assert "synchronousMode" in render_error(values) or "failsafeMode" in render_error(values)
