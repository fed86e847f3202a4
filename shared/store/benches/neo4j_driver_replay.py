"""Replays captured Bolt transactions with the official Neo4j Python driver.

Used by the ingest benchmark (shared/store/benches/ingest.rs): deploygraph's writes are read off
the wire by deploygraph_store::testing::bolt, written as JSON lines (one unit of work each), and
sent again here, statement by statement, transaction by transaction, in the order deploygraph
committed them, so both drivers are timed on the very same statements.

    python neo4j_driver_replay.py URI WARMUP.jsonl MEASURED.jsonl

The warm-up units run first, untimed; then the measured units are timed. Prints one JSON object:
{"driver": version, "seconds": float, "units": int, "statements": int, "records": int}.
Parameters are decoded before the clock starts (deploygraph's own encoding of its rows is inside
its figure, the driver's packing of them inside this one).
"""

import base64
import datetime
import json
import sys
import time

import neo4j
from neo4j.time import DateTime


def structure(tag, fields):
    # DateTime: 0x46 legacy (seconds are local: UTC plus the offset), 0x49 UTC seconds.
    if tag in (0x46, 0x49) and len(fields) == 3:
        seconds, nanos, offset = fields
        utc = seconds - offset if tag == 0x46 else seconds
        zone = datetime.timezone(datetime.timedelta(seconds=offset))
        at = datetime.datetime.fromtimestamp(utc, zone)
        return DateTime(
            at.year, at.month, at.day, at.hour, at.minute, at.second,
            nanosecond=nanos, tzinfo=zone,
        )
    raise ValueError(f"structure 0x{tag:02X} is not a parameter")


def value(v):
    if isinstance(v, list):
        return [value(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1 and "$float" in v:
            return float(v["$float"])
        if len(v) == 1 and "$bytes" in v:
            return bytearray(base64.b64decode(v["$bytes"]))
        if len(v) == 1 and "$map" in v:
            return {k: value(x) for k, x in v["$map"].items()}
        if len(v) == 2 and "$struct" in v and "fields" in v:
            return structure(v["$struct"], [value(f) for f in v["fields"]])
        return {k: value(x) for k, x in v.items()}
    return v


def load(path):
    units = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            unit = json.loads(line)
            units.append((
                unit["db"],
                unit["read"],
                unit["end"],
                [(s["text"], value(s["params"])) for s in unit["statements"]],
            ))
    return units


def replay(driver, units):
    """Runs `units` in order; every record is fetched, as deploygraph reads every row."""
    sessions = {}
    records = 0
    try:
        for db, read, end, statements in units:
            key = (db, read)
            session = sessions.get(key)
            if session is None:
                session = driver.session(
                    database=db,
                    default_access_mode=neo4j.READ_ACCESS if read else neo4j.WRITE_ACCESS,
                )
                sessions[key] = session
            if end == "autocommit":
                for text, params in statements:
                    records += len(list(session.run(text, params)))
                continue
            tx = session.begin_transaction()
            for text, params in statements:
                records += len(list(tx.run(text, params)))
            if end == "commit":
                tx.commit()
            else:
                tx.rollback()
    finally:
        for session in sessions.values():
            session.close()
    return records


def main():
    uri, warmup_path, measured_path = sys.argv[1:4]
    warmup, measured = load(warmup_path), load(measured_path)
    with neo4j.GraphDatabase.driver(uri, auth=None) as driver:
        driver.verify_connectivity()
        replay(driver, warmup)
        started = time.perf_counter()
        records = replay(driver, measured)
        seconds = time.perf_counter() - started
    print(json.dumps({
        "driver": neo4j.__version__,
        "seconds": seconds,
        "units": len(measured),
        "statements": sum(len(u[3]) for u in measured),
        "records": records,
    }))


if __name__ == "__main__":
    main()
