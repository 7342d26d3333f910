"""A reader of an offline W&B run's transaction log (RUN_DIR/wandb/offline-run-*/run-ID.wandb), from W&B's
own record definitions (wandb.proto): the log is LevelDB's format, 32 KiB blocks of records with a 7-byte
header (CRC-32C, length, type FULL/FIRST/MIDDLE/LAST) after the file header ':W&B' + magic + version."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, partial = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:   # padding to the block's end
            pos += left
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            payload = chunk
        elif kind == FIRST:
            partial = chunk
            continue
        elif kind == MIDDLE:
            partial += chunk
            continue
        else:
            payload = partial + chunk
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def history(path: Path) -> list[dict]:
    """The rows logged with run.log, key -> value."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records(path) if r.WhichOneof("record_type") == "history"]


def config(path: Path) -> dict:
    """The run's config: the run record's, then later config records."""
    found = {}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        updates = r.run.config.update if kind == "run" else r.config.update if kind == "config" else []
        found.update({item.key: json.loads(item.value_json) for item in updates})
    return found
