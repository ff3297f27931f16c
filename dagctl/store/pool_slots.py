"""Pool slots as rows: how PostgreSQL claims pooled attempts without schedulers queueing
behind each other, and how the slot rows follow the pool sizes.

Every pool has one `pool_slot` row per slot. A slot is free when its `holder` (the
task_run id that took it last) is not `running` under a live lease, or is gone: an
attempt that ends, is cancelled or times out frees its slots when its row leaves
`running`, and a dead scheduler's when its leases run out, without anyone writing to
the slot. A claim of pooled attempts, inside claim()'s transaction:

1. locks the oldest ready pooled attempts (SKIP LOCKED) of the pools that look free;
2. locks as many slot rows as those attempts need, per pool, that look free (SKIP
   LOCKED: another scheduler's slots are passed over, never waited for);
3. checks, in a NEW statement, which of the locked slots are free: under READ
   COMMITTED that statement's snapshot holds every claim committed on those rows
   before we locked them, so a slot taken meanwhile is seen taken (step 2's own
   snapshot may predate it);
4. gives the free slots to the attempts in claim order, and in ONE statement marks the
   attempts running and writes their ids on their slots.

Two schedulers never hold one slot row at once, and a slot row is only given to an
attempt after a check that saw its previous holder's claim, so a pool never has more
attempts running under live leases than slots (the invariant tests/faults/test_pools.py
measures from the task side). SQLite serialises every transaction (`BEGIN IMMEDIATE`)
and keeps the counting claim of pools.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from dagctl.states import CLAIMABLE_TASK, TaskStatus, task_sources
from dagctl.store.claiming import running_values
from dagctl.store.priorities import claim_order
from dagctl.store.tables import dag, pool_slot, task_pool, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

# A slot is taken while its holder is `running` under a live lease (the database's clock).

# Step 2: per pool, up to `n` slot rows that look free, passing over locked ones.
LOCK_SLOTS = text(
    "SELECT s.pool, s.slot FROM unnest(CAST(:p_pools AS varchar[]), CAST(:p_wants AS integer[]))"
    " AS d(pool, n) CROSS JOIN LATERAL ("
    " SELECT pool_slot.pool, pool_slot.slot FROM pool_slot WHERE pool_slot.pool = d.pool"
    " AND NOT EXISTS (SELECT 1 FROM task_run h WHERE h.id = pool_slot.holder"
    " AND h.status = 'running' AND h.lease_expires_at > timezone('utc', now()))"
    " ORDER BY pool_slot.slot LIMIT d.n FOR UPDATE SKIP LOCKED) AS s"
)

# Step 3, a new snapshot: which of the slots we hold are free.
FREE_OF_LOCKED = text(
    "SELECT pool_slot.pool, pool_slot.slot FROM pool_slot"
    " JOIN unnest(CAST(:p_pools AS varchar[]), CAST(:p_slots AS integer[])) AS l(pool, slot)"
    " ON pool_slot.pool = l.pool AND pool_slot.slot = l.slot"
    " WHERE NOT EXISTS (SELECT 1 FROM task_run h WHERE h.id = pool_slot.holder"
    " AND h.status = 'running' AND h.lease_expires_at > timezone('utc', now()))"
    " ORDER BY pool_slot.pool, pool_slot.slot"
)


NO_SORT = text("SET LOCAL enable_sort = off")
SORT = text("SET LOCAL enable_sort = on")


@dataclass(frozen=True)
class Candidate:
    task_run_id: int
    pool: str
    slots: int


def build_candidates(
    free: Any, served: Any | None, by_priority: bool = False, narrowed: Any | None = None
) -> Any:
    """Step 1: the oldest ready pooled attempts of pools with a free slot by the count
    `free` (a CTE of pool name and free slots), locked, skipping those another
    scheduler holds. `served`: the work-queue filter, if any; `by_priority`: the
    highest priority first; `narrowed`: the DAGs to claim from (dag_limits.py), if not all."""
    query = (
        select(task_run.c.id, task_pool.c.pool, task_pool.c.slots, free.c.free)
        .join_from(
            task_run,
            task_pool,
            and_(task_pool.c.dag_name == task_run.c.dag_name, task_pool.c.task_name == task_run.c.task_name),
        )
        # Only pools with a free slot: a full pool's queue cannot crowd out the others.
        .join(free, and_(free.c.name == task_pool.c.pool, free.c.free > 0))
        .where(
            task_run.c.status.in_([s.value for s in CLAIMABLE_TASK]),
            task_run.c.not_before <= bindparam("p_now", type_=DateTime),
            task_run.c.dag_name.not_in(select(dag.c.name).where(dag.c.missing_since.is_not(None))),
        )
        .order_by(*claim_order(by_priority))
        .limit(bindparam("p_limit", type_=Integer))
        .with_for_update(skip_locked=True, of=task_run)
    )
    if narrowed is not None:
        query = query.where(narrowed)
    return query if served is None else query.where(served)


def wanted_slots(rows: Iterable[Any]) -> tuple[list[Candidate], dict[str, int]]:
    """The candidates in claim order, and how many slots of each pool they need, no
    more than the pool looked to have free."""
    candidates: list[Candidate] = []
    wants: dict[str, int] = {}
    for row in rows:
        if wants.get(row.pool, 0) + row.slots <= row.free:
            candidates.append(Candidate(int(row.id), str(row.pool), int(row.slots)))
            wants[row.pool] = wants.get(row.pool, 0) + int(row.slots)
    return candidates, wants


def give_slots(
    candidates: Sequence[Candidate], free: Mapping[str, list[int]]
) -> list[tuple[Candidate, list[int]]]:
    """Step 4's choice: the free slots we hold, to the candidates in claim order, each
    taking its pool's lowest free slots. A candidate that does not fit waits, and so do
    the later ones of its pool (as on SQLite): a big task is not starved by small ones."""
    left = {name: sorted(slots) for name, slots in free.items()}
    given: list[tuple[Candidate, list[int]]] = []
    full: set[str] = set()
    for candidate in candidates:
        mine = left.get(candidate.pool, [])
        if candidate.pool in full or len(mine) < candidate.slots:
            full.add(candidate.pool)
            continue
        given.append((candidate, mine[: candidate.slots]))
        del mine[: candidate.slots]
    return given


def build_take(returning: Sequence[Any]) -> Any:
    """Step 4's write: the attempts `p_ids` running with their pool and slot count, and
    their ids on the slot rows (`p_slot_pools`, `p_slot_nos`, `p_slot_holders`), in one
    statement (a data-modifying CTE runs whether or not it is read)."""
    give = select(
        func.unnest(bindparam("p_ids", type_=ARRAY(Integer))).label("id"),
        func.unnest(bindparam("p_pools", type_=ARRAY(String))).label("pool"),
        func.unnest(bindparam("p_slots", type_=ARRAY(Integer))).label("slots"),
    ).cte("give")
    hold = select(
        func.unnest(bindparam("p_slot_pools", type_=ARRAY(String))).label("pool"),
        func.unnest(bindparam("p_slot_nos", type_=ARRAY(Integer))).label("slot"),
        func.unnest(bindparam("p_slot_holders", type_=ARRAY(Integer))).label("holder"),
    ).cte("hold")
    taken = (
        update(pool_slot)
        .where(
            pool_slot.c.pool == hold.c.pool,
            pool_slot.c.slot == hold.c.slot,
            # Spelled out for the planner, so it looks the rows up by key instead of
            # hashing every slot (or every queued attempt, below).
            pool_slot.c.pool == func.any(bindparam("p_slot_pools", type_=ARRAY(String))),
            pool_slot.c.slot == func.any(bindparam("p_slot_nos", type_=ARRAY(Integer))),
        )
        .values(holder=hold.c.holder)
        .returning(pool_slot.c.slot)
        .cte("taken")
    )
    return (
        update(task_run)
        .where(
            task_run.c.id == give.c.id,
            task_run.c.id == func.any(bindparam("p_ids", type_=ARRAY(Integer))),
            task_run.c.status.in_(task_sources(TaskStatus.RUNNING)),
        )
        .values({**running_values(is_postgres=True), "pool": give.c.pool, "pool_slots": give.c.slots})
        .returning(*returning)
        .add_cte(taken)
    )


def claim_with_slots(
    connection: Connection, candidates_statement: Any, take_statement: Any, values: Mapping[str, Any]
) -> list[Any]:
    """Steps 1-4 (see the module docstring); returns the claimed rows."""
    # Read the attempts in claim order from the partial index and stop at the limit:
    # the planner would otherwise sort every ready attempt first whenever task_run's
    # statistics are older than its rows (a burst of queued attempts): 100+ ms a claim.
    connection.execute(NO_SORT)
    try:
        rows = connection.execute(candidates_statement, values).all()
    finally:
        connection.execute(SORT)
    candidates, wants = wanted_slots(rows)
    if not candidates:
        return []
    pools = sorted(wants)
    locked = connection.execute(LOCK_SLOTS, {"p_pools": pools, "p_wants": [wants[p] for p in pools]}).all()
    if not locked:
        return []
    free: dict[str, list[int]] = {}
    for row in connection.execute(
        FREE_OF_LOCKED, {"p_pools": [r.pool for r in locked], "p_slots": [r.slot for r in locked]}
    ):
        free.setdefault(row.pool, []).append(int(row.slot))
    given = give_slots(candidates, free)
    if not given:
        return []
    holders = [(c.pool, slot, c.task_run_id) for c, slots in given for slot in slots]
    return list(
        connection.execute(
            take_statement,
            {
                **values,
                "p_ids": [c.task_run_id for c, _ in given],
                "p_pools": [c.pool for c, _ in given],
                "p_slots": [c.slots for c, _ in given],
                "p_slot_pools": [h[0] for h in holders],
                "p_slot_nos": [h[1] for h in holders],
                "p_slot_holders": [h[2] for h in holders],
            },
        )
    )


def sync_slot_rows(connection: Connection, insert_into: Any, sizes: Mapping[str, int]) -> None:
    """Make pool_slot hold slots 1..N of each pool of `sizes` ({name: N}) and nothing
    else. A slot removed from a shrunk pool takes its holder's claim with it: that
    attempt runs on, and the pool's new size applies to the claims after it."""
    have = {
        r.pool: (int(r.n), int(r.top))
        for r in connection.execute(
            select(
                pool_slot.c.pool, func.count().label("n"), func.max(pool_slot.c.slot).label("top")
            ).group_by(pool_slot.c.pool)
        )
    }
    gone = [name for name in have if name not in sizes]
    if gone:
        connection.execute(delete(pool_slot).where(pool_slot.c.pool.in_(gone)))
    for name, size in sizes.items():
        count, top = have.get(name, (0, 0))
        if top > size:
            connection.execute(delete(pool_slot).where(pool_slot.c.pool == name, pool_slot.c.slot > size))
        if count < size or top < size:
            # DO NOTHING: schedulers starting together write the same rows.
            connection.execute(
                insert_into(pool_slot).on_conflict_do_nothing(),
                [{"pool": name, "slot": slot} for slot in range(1, size + 1)],
            )


__all__ = ["Candidate", "build_candidates", "build_take", "claim_with_slots", "give_slots", "sync_slot_rows"]
