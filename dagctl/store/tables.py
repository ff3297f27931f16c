"""The state schema, defined once. Migrations must reach exactly this (tests/migration)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# Stable constraint names, so migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# All timestamps are naive UTC.

dag = Table(
    "dag",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("fingerprint", String(64), nullable=True),
    # The scheduling watermark: the latest slot a run was created (or deliberately
    # skipped) for. Slots at or before it are never considered again.
    Column("last_slot", DateTime, nullable=True),
    Column("first_seen_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # Since when a scheduler found the DAG deleted, renamed away or broken (cleared by
    # any scheduler that loads it fine), and why: after a grace period its active runs
    # end failed with that reason, and its attempts are not claimed meanwhile.
    Column("missing_since", DateTime, nullable=True),
    Column("missing_reason", Text, nullable=True),
)

dag_run = Table(
    "dag_run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # scheduled | manual | backfill | child
    Column("creator", String(200), nullable=False),
    Column("logical_date", DateTime, nullable=False),
    # Set for scheduled runs only: the unique key that makes "one run per slot" hold
    # whatever the number of schedulers. NULLs never collide, so manual runs are free.
    Column("scheduled_slot", DateTime, nullable=True),
    Column("params", Text, nullable=False, default="{}"),  # JSON
    Column("status", String(16), nullable=False),
    # Set whenever something happened that the run's next step depends on (created,
    # an attempt ended, cancelled); the advance step only looks at flagged runs.
    Column("dirty", Boolean, nullable=False, default=True),
    Column("fingerprint", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("ended_at", DateTime, nullable=True),
    # The run's data interval (previous slot, slot], naive UTC; NULL on runs made
    # before run variables existed (read as the logical date).
    Column("data_interval_start", DateTime, nullable=True),
    Column("data_interval_end", DateTime, nullable=True),
    # The backfill that made this run. A backfill that reruns slots (--reprocess
    # failed|all) cannot take their scheduled_slot key: this key keeps it to one run per
    # slot, whatever the number of processes creating them.
    Column("backfill_id", Integer, nullable=True),
    # A child run (kind `child`): the run and the attempt of its `dag` task that made
    # it (migration 0011). No FK: pruning a parent keeps its children readable.
    Column("parent_run_id", Integer, nullable=True),
    Column("parent_task_run_id", Integer, nullable=True),
    UniqueConstraint("dag_name", "scheduled_slot"),
    UniqueConstraint("backfill_id", "logical_date"),
    Index(None, "dag_name", "logical_date"),
    Index(None, "status", "dirty"),
    Index(None, "status", "ended_at"),
    Index(None, "dag_name", "id"),  # a DAG's runs newest first (the dashboard)
    Index(None, "parent_run_id"),
)

backfill = Table(
    "backfill",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_name", String(200), nullable=False),
    Column("start_slot", DateTime, nullable=False),  # the range asked for, naive UTC
    Column("end_slot", DateTime, nullable=False),
    Column("reprocess", String(16), nullable=False),  # missing | failed | all
    Column("max_active_runs", Integer, nullable=False),
    Column("reverse", Boolean, nullable=False, default=False),
    Column("schedule", String(200), nullable=False),  # the DAG's, or --schedule
    Column("params", Text, nullable=False, default="{}"),  # JSON: the -p values given
    Column("status", String(16), nullable=False),  # running | cancelled (finished: from its runs)
    Column("creator", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Periodic chores shared by every scheduler (retention): one row per chore, taken by
# an UPDATE whose WHERE compares `next_due_at` with the database's clock, so exactly one
# scheduler does it per period whatever the hosts' clocks say.
maintenance = Table(
    "maintenance",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("next_due_at", DateTime, nullable=False),
    Column("owner", String(64), nullable=True),
)

task_run = Table(
    "task_run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_run_id", Integer, ForeignKey("dag_run.id", ondelete="CASCADE"), nullable=False),
    Column("dag_name", String(200), nullable=False),
    Column("task_name", String(255), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("not_before", DateTime, nullable=False),  # retry delay: not claimable earlier
    Column("queued_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("ended_at", DateTime, nullable=True),
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", DateTime, nullable=True),
    # The pool and slots the attempt took when claimed (store/pools.py): it holds them
    # while `running` under a live lease. NULL when its task uses no pool.
    Column("pool", String(200), nullable=True),
    Column("pool_slots", Integer, nullable=True),
    # JSON object: a successful attempt's outputs, written with its end (migration 0008).
    Column("outputs", Text, nullable=True),
    # The child run an attempt of a `dag` task created (migration 0011).
    Column("child_run_id", Integer, nullable=True),
    # `for_each`: the JSON list of items on the task's own attempt, one item (JSON) on
    # the attempt of each item (task name `task.sh[3]`) (migration 0011).
    Column("map_items", Text, nullable=True),
    UniqueConstraint("dag_run_id", "task_name", "attempt"),
    Index(None, "status", "not_before", "queued_at"),
    Index(None, "lease_owner", "status"),
    Index(None, "pool", "status"),
    # Partial: the claimable attempts in claim order, so a claim reads the oldest first
    # without sorting every queued attempt (migration 0010).
    Index(
        None,
        "queued_at",
        "id",
        postgresql_where=text("status IN ('queued', 'waiting')"),
        sqlite_where=text("status IN ('queued', 'waiting')"),
    ),
    # Partial: the outputs read at each claim touches only the attempts that published any.
    Index(
        None,
        "dag_run_id",
        postgresql_where=text("outputs IS NOT NULL"),
        sqlite_where=text("outputs IS NOT NULL"),
    ),
)

task_log = Table(
    "task_log",
    metadata,
    Column("task_run_id", Integer, ForeignKey("task_run.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("truncated_bytes", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
)

scheduler = Table(
    "scheduler",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("manager", String(64), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),
    Column("stopped_at", DateTime, nullable=True),
)

# Which DAGs each scheduler has loaded (its DAGs folder may differ from another's), so
# `why` and `trigger` can tell a DAG no live scheduler knows. Rows of a scheduler count
# only while its heartbeat is fresh (by the database's clock).
scheduler_dag = Table(
    "scheduler_dag",
    metadata,
    Column("scheduler_id", String(64), primary_key=True),
    Column("dag_name", String(200), primary_key=True),
    Index(None, "dag_name"),
)

# What `list` shows of each DAG folder a scheduler loaded (valid or broken), as JSON,
# with the stat fingerprint of the folder (and dagctl.yaml) it was read from: `list`
# uses a row only while the folder's fingerprint still matches, instead of parsing
# every file; a scheduler rewrites the rows of the DAGs that changed at each sync.
dag_summary = Table(
    "dag_summary",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("stamp", String(64), nullable=False),
    Column("summary", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# The alert outbox (dagctl/notify/): one row per event, written in the transaction of
# the state change that causes it, so no event is lost or doubled when a scheduler dies
# between the two. Any scheduler delivers it: it takes a due row by moving
# `next_attempt_at` past the database's clock (SKIP LOCKED on PostgreSQL), which is
# also its claim's expiry should it die while sending.
notification = Table(
    "notification",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_name", String(200), nullable=False),
    Column("dag_run_id", Integer, nullable=True),  # no FK: a pruned run keeps its alerts
    # failure | recovery | success | deadline_missed | retry | lost | test
    Column("event", String(32), nullable=False),
    Column("channels", Text, nullable=False),  # JSON list of channel names, fixed at creation
    Column("sent_to", Text, nullable=False, default="[]"),  # JSON: channels already delivered
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("delivered_at", DateTime, nullable=True),
    Column("owner", String(64), nullable=True),
    Column("last_error", Text, nullable=True),
    # Set for events that must exist once whatever the number of schedulers deciding
    # them (a run's missed deadline); NULLs never collide, so other events are free.
    Column("dedup_key", String(200), nullable=True),
    # The attempt a `retry` or `lost` event is about (no FK, like dag_run_id).
    Column("task_run_id", Integer, nullable=True),
    UniqueConstraint("dedup_key"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "dag_name", "id"),
    Index(None, "dag_run_id"),
)

# The pools of dagctl.yaml as the schedulers last synced them (sizes, descriptions);
# claims take their slots as rows of pool_slot (store/pool_slots.py), never locking
# these rows, and claims of unpooled tasks never touch either.
pool = Table(
    "pool",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("slots", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
)

# One row per slot of each pool, synced with `pool` (migration 0010). On PostgreSQL a
# claim takes free slot rows with SKIP LOCKED and writes the attempt's id in `holder`:
# a slot is free when its holder is not `running` under a live lease (or is gone), so
# nothing has to give a slot back. Schedulers claim from one pool side by side.
pool_slot = Table(
    "pool_slot",
    metadata,
    Column("pool", String(200), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("holder", Integer, nullable=True),  # a task_run id; no FK: a pruned holder frees it
)

# Which tasks take a pool, synced from the definitions (the task's `pool:` over its
# DAG's). Only pooled tasks have a row: unpooled claims pay one empty anti-join.
task_pool = Table(
    "task_pool",
    metadata,
    Column("dag_name", String(200), primary_key=True),
    Column("task_name", String(255), primary_key=True),
    Column("pool", String(200), nullable=False),
    Column("slots", Integer, nullable=False),
)

# Which tasks go to a work queue other than `default` (the task's `queue:` over its
# DAG's), synced from the definitions like task_pool: a scheduler claims only the
# attempts of the queues it serves (`schedule --queue`, store/queues.py).
task_queue = Table(
    "task_queue",
    metadata,
    Column("dag_name", String(200), primary_key=True),
    Column("task_name", String(255), primary_key=True),
    Column("queue", String(200), nullable=False),
)

# One row, written by the migration that made the table: this state database's
# installation id, a random value. It names what belongs to this installation outside
# the database (the `dagctl.io/instance` label of kubernetes pods), whatever URL a
# scheduler reaches the database by (store/installation.py).
installation = Table(
    "installation",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("installation_id", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Which tasks have a priority other than 0 (the task's `priority:` over its DAG's),
# synced like task_queue (store/priorities.py): while any row exists, claims take the
# highest priority first, then the oldest (migration 0010).
task_priority = Table(
    "task_priority",
    metadata,
    Column("dag_name", String(200), primary_key=True),
    Column("task_name", String(255), primary_key=True),
    Column("priority", Integer, nullable=False),
)

# `max_active_tasks` of the DAGs that set it, synced from the definitions; a claim of
# such a DAG's attempts locks its row (store/dag_limits.py).
dag_limit = Table(
    "dag_limit",
    metadata,
    Column("dag_name", String(200), primary_key=True),
    Column("max_active_tasks", Integer, nullable=False),
)

# The work queues each scheduler serves (`schedule --queue`, default `default`), written
# when it starts; they count while its heartbeat is fresh, like scheduler_dag, so
# `dagctl queues` can tell a queue that no live scheduler serves (migration 0010).
scheduler_queue = Table(
    "scheduler_queue",
    metadata,
    Column("scheduler_id", String(64), primary_key=True),
    Column("queue", String(200), primary_key=True),
)

# A row per work queue paused by `dagctl queue pause` (migration 0015): no scheduler
# claims its attempts until `dagctl queue unpause`; running ones finish.
queue_pause = Table(
    "queue_pause",
    metadata,
    Column("queue", String(200), primary_key=True),
    Column("paused_at", DateTime, nullable=False),
)

# The per-queue concurrency limits of dagctl.yaml's `queues:` (`gpu: {limit: 2}`),
# synced like dag_limit; a claim of such a queue's attempts locks its row
# (store/queue_limits.py, migration 0017).
queue_limit = Table(
    "queue_limit",
    metadata,
    Column("queue", String(200), primary_key=True),
    Column("max_running", Integer, nullable=False),
)
