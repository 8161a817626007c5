"""scripts/demo's day-2 commands refuse a command line they cannot use, naming what they
expect, before they touch a cluster (none is started here)."""
import pytest

from localcluster import demo, paths


@pytest.mark.parametrize("argv, words", [
    (["rollout", "now"], "rollout: expected no arguments"),
    (["workers"], "workers: expected N, the number of worker groups"),
    (["workers", "three"], "workers: expected N, the number of worker groups"),
    (["workers", "3", "--rebalance"], "workers: expected N, the number of worker groups"),
])
def test_bad_command_line_is_refused(argv, words, capsys):
    existed = (paths.RUN / demo.DEFAULT_NAME).exists()
    assert demo.main(argv) == 2
    assert words in capsys.readouterr().err
    assert (paths.RUN / demo.DEFAULT_NAME).exists() == existed
