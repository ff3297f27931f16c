"""Which alert rules apply: each DAG's own, then dagctl.yaml's; for a DAG that is gone
(deleted or broken), its rules as last loaded, else dagctl.yaml's."""

from __future__ import annotations

from typing import cast

from dagctl.dags.model import Dag, NotifyRule
from dagctl.notify import rules_by_dag
from dagctl.notify.delivery import AlertDelivery
from dagctl.store import Store

DEFAULTS = (NotifyRule(("failure",), ("mail",)),)


def _dag(name: str, *rules: NotifyRule) -> Dag:
    return Dag(name=name, folder="/x", description="x", tasks={}, fingerprint="f", notify=rules)


def test_rules_merge_the_channels_of_every_rule_naming_an_event() -> None:
    dag = _dag("etl", NotifyRule(("failure", "lost"), ("hook",)), *DEFAULTS)
    assert rules_by_dag({"etl": dag, "quiet": _dag("quiet")}) == {
        "etl": {"failure": ("hook", "mail"), "lost": ("hook",)}
    }


def test_a_gone_dag_keeps_its_last_rules_and_one_never_loaded_gets_the_defaults() -> None:
    alerts = AlertDelivery(cast(Store, None), "me")  # sync and rules never touch the store
    etl = _dag("etl", NotifyRule(("failure",), ("hook",)), *DEFAULTS)
    alerts.sync({}, {"etl": etl, "other": _dag("other", *DEFAULTS)}, DEFAULTS)
    alerts.sync({}, {"other": _dag("other", *DEFAULTS)}, DEFAULTS)  # etl deleted or broken
    alerts.sync({}, {"other": _dag("other", *DEFAULTS)}, DEFAULTS)  # and still gone a reload later
    assert alerts.rules_when_gone(["etl", "unknown"]) == {
        "etl": {"failure": ("hook", "mail")},
        "unknown": {"failure": ("mail",)},
    }
    alerts.sync({}, {"etl": _dag("etl", *DEFAULTS)}, DEFAULTS)  # back, with other rules
    alerts.sync({}, {}, DEFAULTS)  # gone again: its newer rules count, not the old ones
    assert alerts.rules_when_gone(["etl"]) == {"etl": {"failure": ("mail",)}}
