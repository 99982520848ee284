"""merge_batch locks only the ip_inventory rows its batch may write (revision 0043): a refresh
whose answers repeat the stored documents neither writes nor locks those rows, so it does not
wait for an ingest chunk that holds them; a changed answer still takes its row's lock."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

QUIET = {"observed": True, "noise": False, "riot": False}
NOISY = {"observed": True, "noise": True, "riot": False}


def merge(conn: psycopg.Connection[Any], answers: dict[str, dict[str, Any]]) -> None:
    """One GreyNoise batch through the production path (staging, then merge_batch), committed."""
    with conn.transaction():
        run = conn.execute("SELECT ipintel.start_run('greynoise', '{}'::jsonb)").fetchone()
        batch = conn.execute("SELECT nextval('ipintel_staging.batch_id_seq')").fetchone()
        assert run is not None and batch is not None
        for ip, document in answers.items():
            conn.execute("INSERT INTO ipintel_staging.enrichment_results (run_id, batch_id, source, ip, fetched_at, "
                         "result) VALUES (%s, %s, 'greynoise', %s, now(), %s)", (run[0], batch[0], ip, Jsonb(document)))
        conn.execute("SELECT * FROM ipintel.merge_batch(%s, %s)", (run[0], batch[0]))


def test_a_refresh_of_unchanged_answers_does_not_wait_for_their_rows(conn: psycopg.Connection[Any], db: str) -> None:
    conn.execute("INSERT INTO ipintel.ip_inventory (ip) VALUES ('45.33.1.1'), ('45.33.1.2')")
    merge(conn, {"45.33.1.1": QUIET, "45.33.1.2": QUIET})
    before = conn.execute("SELECT fetched_at FROM ipintel.enrichment_state WHERE ip = '45.33.1.1'").fetchone()

    # Another writer (an ingest chunk) holds 45.33.1.1's row, as lock_for_merge takes it.
    with psycopg.connect(db) as holder:
        holder.execute("SELECT 1 FROM ipintel.ip_inventory WHERE ip = '45.33.1.1' FOR NO KEY UPDATE")
        conn.execute("SET lock_timeout = '2s'")
        # Its answer unchanged, the other IP's changed: merged at once.
        merge(conn, {"45.33.1.1": QUIET, "45.33.1.2": NOISY})
        after = conn.execute("SELECT fetched_at FROM ipintel.enrichment_state WHERE ip = '45.33.1.1'").fetchone()
        assert before is not None and after is not None and after[0] > before[0]  # its fetch time recorded
        assert conn.execute("SELECT is_scanner FROM ipintel.ip_inventory WHERE ip = '45.33.1.2'").fetchone() == (True,)
        # A changed answer for the held row waits for it (here until the lock timeout).
        with pytest.raises(psycopg.errors.LockNotAvailable):
            merge(conn, {"45.33.1.1": NOISY})
    merge(conn, {"45.33.1.1": NOISY})  # once released, it merges
    assert conn.execute("SELECT is_scanner FROM ipintel.ip_inventory WHERE ip = '45.33.1.1'").fetchone() == (True,)
