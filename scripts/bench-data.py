#!/usr/bin/env python3
"""Makes scripts/bench's payload tree, deterministically (fixed seeds).

Usage: bench-data.py DIR APP MEGABYTES BIN_AMD64 BIN_ARM64

At 500 MB: 200 MB incompressible random files, 200 MB log-like text, 40 MB structured
binary records, ~50 MB of small files (5,000 of 0.5-24 KiB: text, JSON and random), the
example's two binaries, and the unit and sysusers snippet every bundle needs. Every part
scales with MEGABYTES but the number of small files (their sizes scale instead).
"""

import os
import random
import shutil
import struct
import sys

MB = 1 << 20


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def random_files(root, total, count, rng):
    size = total // count
    for i in range(count):
        path = os.path.join(root, "data", "random", f"blob-{i:02}.bin")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MB)
                f.write(rng.randbytes(n))
                left -= n


LEVELS = ["INFO"] * 12 + ["DEBUG"] * 6 + ["WARN"] * 2 + ["ERROR"]
PATHS = ["/healthz", "/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/users/{id}",
         "/api/v1/search?q={q}", "/metrics", "/static/app.{h}.js", "/login"]
MSGS = ["request served", "cache miss", "cache hit", "slow query", "retrying upstream",
        "connection reset by peer", "token refreshed", "job finished"]
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey").split()


def log_line(rng, t):
    path = rng.choice(PATHS).format(id=rng.randrange(1, 99999), q=rng.choice(WORDS),
                                    h=f"{rng.getrandbits(32):08x}")
    return (f"2024-03-{1 + t // 86400 % 28:02}T{t // 3600 % 24:02}:{t // 60 % 60:02}:{t % 60:02}."
            f"{rng.randrange(1000):03}Z level={rng.choice(LEVELS)} msg=\"{rng.choice(MSGS)}\" "
            f"method={rng.choice(('GET', 'GET', 'GET', 'POST', 'PUT'))} path={path} "
            f"status={rng.choice((200, 200, 200, 200, 201, 204, 304, 404, 500))} "
            f"duration_ms={rng.expovariate(1 / 40):.3f} bytes={rng.randrange(50, 90000)} "
            f"trace_id={rng.getrandbits(64):016x} peer=10.{rng.randrange(4)}.{rng.randrange(256)}."
            f"{rng.randrange(256)}:{rng.randrange(1024, 65535)}\n")


def log_files(root, total, count, rng):
    size = total // count
    t = 1709251200
    for i in range(count):
        path = os.path.join(root, "logs", f"app-{i:02}.log")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            written = 0
            while written < size:
                chunk = []
                for _ in range(2000):
                    t += rng.randrange(3)
                    chunk.append(log_line(rng, t))
                data = "".join(chunk).encode()[: size - written]
                f.write(data)
                written += len(data)


def records(root, total, rng):
    # A table of fixed-size records with slowly changing fields: compresses, unlike text.
    path = os.path.join(root, "data", "records.db")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rec = struct.Struct("<QIIdd16s")
    n = total // rec.size
    ident, ts, price = 1, 1709251200, 100.0
    with open(path, "wb") as f:
        batch = []
        for _ in range(n):
            ident += 1
            ts += rng.randrange(5)
            price += rng.uniform(-0.5, 0.5)
            batch.append(rec.pack(ident, ts, rng.randrange(64), price, price * 1.01,
                                  rng.choice(WORDS).encode()))
            if len(batch) == 4096:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))


def small_files(root, count, scale, rng):
    for i in range(count):
        kind = i % 4
        size = max(64, int(rng.randrange(512, 24 * 1024) * min(1.0, scale)))
        d = os.path.join(root, "small", f"d{i // 250:02}")
        if kind == 0:
            data = rng.randbytes(size)
            name = f"f{i:05}.bin"
        elif kind == 1:
            items = []
            while sum(map(len, items)) < size:
                items.append(f'{{"id": {rng.randrange(10**6)}, "name": "{rng.choice(WORDS)}", '
                             f'"tags": ["{rng.choice(WORDS)}", "{rng.choice(WORDS)}"], '
                             f'"score": {rng.random():.6f}}}')
            data = ("[\n  " + ",\n  ".join(items) + "\n]\n").encode()[:size]
            name = f"f{i:05}.json"
        else:
            words = [rng.choice(WORDS) for _ in range(size // 6 + 1)]
            data = " ".join(words).encode()[:size]
            name = f"f{i:05}.txt"
        write(os.path.join(d, name), data)


def main():
    root, app, megabytes, bin_amd64, bin_arm64 = sys.argv[1:6]
    scale = int(megabytes) / 500
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    rng = random.Random(20240301)
    random_files(root, int(200 * MB * scale), 4, rng)
    log_files(root, int(200 * MB * scale), 20, rng)
    records(root, int(40 * MB * scale), rng)
    # The same number of files at every size: what grows with the bundle is bytes only.
    small_files(root, 5000, scale, rng)
    os.makedirs(os.path.join(root, "bin"))
    shutil.copyfile(bin_amd64, os.path.join(root, "bin", app))
    shutil.copyfile(bin_arm64, os.path.join(root, "bin", f"{app}-arm64"))
    os.chmod(os.path.join(root, "bin", app), 0o755)
    os.chmod(os.path.join(root, "bin", f"{app}-arm64"), 0o755)
    write(os.path.join(root, "systemd", f"{app}.service"),
          (f"[Unit]\nDescription={app} (scripts/bench payload)\n\n[Service]\nType=exec\n"
           f"ExecStart=/opt/{app}/current/bin/{app}\nUser={app}\nGroup={app}\n\n"
           "[Install]\nWantedBy=multi-user.target\n").encode())
    write(os.path.join(root, "sysusers", f"{app}.conf"),
          (f"g {app} -\nu {app} -:{app} \"{app} service\" /var/lib/{app} /usr/sbin/nologin\n").encode())
    write(os.path.join(root, "config", "prod", f"{app}.toml"), b'listen = "127.0.0.1:8080"\n')


if __name__ == "__main__":
    main()
