"""The measuring child: ``python -m bench.worker`` reads one JSON job on stdin and prints one
JSON result line.

Each job runs in a fresh interpreter, so nothing the bench process read, imported or
cached helps it. Modules the measured path would import lazily, and the first Agent of the
process, are warmed up before the clock starts, so the numbers are the persistence work
and not first-import costs (those are measured separately by the ``imports`` workload).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import systems
from bench.data import AGENT_ID, WINDOW, history, message_at


def _warm(spec: dict[str, Any] | None, family: str, cm: str) -> Any:
    """Import what the measured path needs, build a throwaway Agent; returns the S3 counter."""
    counter = None
    name = spec["system"] if spec else ""
    if name and systems.SYSTEMS[name].backend == "s3":
        from bench.moto import install_request_counter, share_botocore_loader

        share_botocore_loader()
        counter = install_request_counter()
        import boto3

        boto3.client("s3")  # loads botocore's service models, which every later client reuses
    if name and family == "mooring":
        backend = systems.SYSTEMS[name].backend
        importlib.import_module(systems.BACKEND_MODULES[backend])
    if family == "strands":
        importlib.import_module("strands.session.file_session_manager")
        importlib.import_module("strands.session.snapshot_session_manager")
        if counter is not None:
            importlib.import_module("strands.session.s3_session_manager")
            importlib.import_module("strands.storage.s3_storage")
    agent = systems.build_agent(None, "warm", family=family, cm=cm)
    agent("warm up")
    gc.collect()
    return counter


def _family(spec: dict[str, Any]) -> str:
    return systems.SYSTEMS[spec["system"]].family


def job_restore(job: dict[str, Any]) -> dict[str, Any]:
    spec, cm = job["store"], job["cm"]
    family = _family(spec)
    counter = _warm(spec, family, cm)
    if counter is not None:
        counter.reset()
    started = time.perf_counter()
    agent = systems.build_agent(spec, job["session"], family=family, cm=cm)
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {"seconds": seconds, "messages": len(agent.messages)}
    if counter is not None:
        result["requests"] = counter.snapshot()
    systems.close_agent(agent)
    return result


# -- append ------------------------------------------------------------------------------------


def _record_bytes(message_id: int) -> int:
    from mooring.session.records import MessageRecord

    record = MessageRecord(message_id=message_id, message=message_at(message_id))
    return len(json.dumps(record.to_dict(), indent=2, ensure_ascii=False).encode("utf-8"))


def _floor(directory: str, existing: int, head: int, count: int) -> list[float]:
    """write + fsync + link + unlink temp + directory fsync of files the size of mooring's
    records: the least any durable, conditional file append can cost."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = set(os.listdir(dfd))
        for i in range(existing):
            if f"m{i}" not in names:
                os.close(os.open(f"m{i}", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=dfd))
        out = []
        for k in range(count):
            payload = b"x" * _record_bytes(head + k)
            started = time.perf_counter()
            fd = os.open("tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
            os.write(fd, payload)
            os.fsync(fd)
            os.close(fd)
            os.link("tmp", f"m{head + k}", src_dir_fd=dfd, dst_dir_fd=dfd)
            os.unlink("tmp", dir_fd=dfd)
            os.fsync(dfd)
            out.append(time.perf_counter() - started)
        return out
    finally:
        os.close(dfd)


async def _append_mooring(spec: dict[str, Any], session_id: str, count: int) -> list[float]:
    from mooring.session import open_repository
    from mooring.session.records import MessageRecord

    repo = open_repository(systems.mooring_url(spec))
    try:
        head = await repo.message_head(session_id, AGENT_ID)
        out = []
        for k in range(count):
            started = time.perf_counter()
            record = MessageRecord(message_id=head + k, message=message_at(head + k))
            await repo.append_messages(session_id, AGENT_ID, [record])
            out.append(time.perf_counter() - started)
        return out
    finally:
        await repo.close()


def _append_strands_file(spec: dict[str, Any], session_id: str, count: int) -> list[float]:
    from strands.types.session import SessionMessage

    manager = systems._strands_manager(spec, session_id)
    head = len(manager.list_messages(session_id, AGENT_ID))
    out = []
    for k in range(count):
        started = time.perf_counter()
        manager.create_message(session_id, AGENT_ID, SessionMessage.from_message(message_at(head + k), head + k))
        out.append(time.perf_counter() - started)
    return out


def _append_snapshot(spec: dict[str, Any], session_id: str, count: int) -> list[float]:
    agent = systems.build_agent(spec, session_id, family="strands", cm="null")
    manager = agent._session_manager
    head = len(agent.messages)

    async def run() -> list[float]:
        out = []
        for k in range(count):
            agent.messages.append(message_at(head + k))
            started = time.perf_counter()
            # What save_latest_on="message" does on every MessageAddedEvent.
            await manager.save_snapshot(agent, is_latest=True)
            out.append(time.perf_counter() - started)
        return out

    return asyncio.run(run())


def job_append(job: dict[str, Any]) -> dict[str, Any]:
    """Append ``count`` messages one at a time to each listed session; seconds per append."""
    name = job["system"]
    count = job["count"]
    if name != "floor":
        _warm(job["sessions"][0]["store"], systems.SYSTEMS[name].family, "null")
    out = []
    for item in job["sessions"]:
        if name == "floor":
            latencies = _floor(item["dir"], item["existing"], item["head"], count)
        elif systems.is_mooring(name):
            latencies = asyncio.run(_append_mooring(item["store"], item["session"], count))
        elif name == "strands-file":
            latencies = _append_strands_file(item["store"], item["session"], count)
        else:
            latencies = _append_snapshot(item["store"], item["session"], count)
        out.append({"existing": item["existing"], "seconds": latencies})
    return {"results": out}


# -- per turn ----------------------------------------------------------------------------------


def _wchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def _tree(directory: str | None) -> dict[str, tuple[int, int, int]]:
    if directory is None or not os.path.isdir(directory):
        return {}
    out = {}
    for base, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            out[path] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _changed_bytes(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> int:
    return sum(meta[1] for path, meta in after.items() if before.get(path) != meta)


def _paired_turns(
    agent: Any, bare: Any, turns: int, warm: int, spec: dict[str, Any] | None, counter: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Turns on ``agent`` (with the session manager) and ``bare`` (none) interleaved, one pair
    per turn in alternating order, so drift in the machine's speed hits both alike; the
    overhead is then a per-turn difference."""
    for i in range(warm):
        agent(f"warm-up prompt {i}")
        bare(f"warm-up prompt {i}")
    directory = spec.get("dir") if spec else None
    seconds, wchar, stored, puts, requests, bare_seconds = [], [], [], [], [], []

    def timed_bare(i: int) -> None:
        started = time.perf_counter()
        bare(f"Prompt {i}: what is the state of the mooring lines tonight?")
        bare_seconds.append(time.perf_counter() - started)

    for i in range(turns):
        if i % 2:
            timed_bare(i)
        before = _tree(directory) if directory else {}
        if counter is not None:
            counter.reset()
        io0 = _wchar()
        started = time.perf_counter()
        agent(f"Prompt {i}: what is the state of the mooring lines tonight?")
        seconds.append(time.perf_counter() - started)
        wchar.append(_wchar() - io0)
        if directory:
            stored.append(_changed_bytes(before, _tree(directory)))
        if counter is not None:
            snap = counter.snapshot()
            puts.append(snap["bytes_sent"])
            requests.append(snap["ops"])
        if not i % 2:
            timed_bare(i)
    out: dict[str, Any] = {"seconds": seconds, "wchar": wchar}
    if directory:
        out["stored_bytes"] = stored
    if counter is not None:
        out["put_bytes"] = puts
        out["requests"] = requests
    return out, {"seconds": bare_seconds}


def job_turn(job: dict[str, Any]) -> dict[str, Any]:
    """For each config: turns with the session manager interleaved with the same turns on an
    Agent holding the same messages and no session manager."""
    spec = job["store"]
    family = _family(spec)
    counter = _warm(spec, family, "window")
    out = []
    for config in job["configs"]:
        hist, cm, session_id = config["hist"], config["cm"], config["session"]
        if not config.get("seeded"):
            systems.seed(spec, session_id, hist, window=cm == "window")
        agent = systems.build_agent(spec, session_id, family=family, cm=cm)
        kept = history(hist)[-WINDOW:] if cm == "window" else history(hist)
        bare = systems.build_agent(None, "bare", family=family, cm=cm, messages=kept)
        persisted, baseline = _paired_turns(agent, bare, job["turns"], job["warm"], spec, counter)
        held = len(agent.messages)
        systems.close_agent(agent)
        out.append({"hist": hist, "cm": cm, "persisted": persisted, "baseline": baseline, "held": held})
        gc.collect()
    return {"results": out}


def job_turnfloor(job: dict[str, Any]) -> dict[str, Any]:
    """The durable-turn floor: what a turn's durable write cannot avoid, on the same file system
    as the file store: write + fsync of two message-sized files, then one directory fsync."""
    directory = Path(job["dir"])
    directory.mkdir(parents=True, exist_ok=True)
    payloads = [b"x" * _record_bytes(i) for i in (0, 1)]
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    out = []
    try:
        for k in range(job["count"]):
            started = time.perf_counter()
            for j, payload in enumerate(payloads):
                fd = os.open(f"t{k}-{j}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dfd)
                os.write(fd, payload)
                os.fsync(fd)
                os.close(fd)
            os.fsync(dfd)
            out.append(time.perf_counter() - started)
    finally:
        os.close(dfd)
    return {"seconds": out}


# -- crash check -------------------------------------------------------------------------------


def job_crashcheck(job: dict[str, Any]) -> dict[str, Any]:
    from bench.workloads.crash import inspect_session

    spec = job["store"]
    return {"sessions": [inspect_session(spec, sid) for sid in job["sessions"]]}


def job_s3seed(job: dict[str, Any]) -> dict[str, Any]:
    """Write a mooring S3 session through ``append_messages`` into an in-process moto mock, and
    return every object it stored, byte for byte, for the bench to load into the moto server.

    mooring's S3 backend PUTs one message at a time, in id order (so a crash leaves a dense
    prefix); through moto's HTTP server that is ~8 ms a message, and the 10k stores alone
    would take minutes. In-process the same writes take a fraction of that, and the bytes are
    the ones the backend wrote.
    """
    from moto import mock_aws

    os.environ.pop("AWS_ENDPOINT_URL_S3", None)  # the mock only answers AWS's own endpoints
    spec = job["store"]
    with mock_aws():
        import boto3

        from bench.moto import BUCKET

        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        systems.seed(spec, job["session"], job["count"], window=job["window"])
        objects = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=spec["prefix"] + "/"):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                objects.append([item["Key"], body.decode("utf-8")])
    return {"objects": objects}


JOBS = {
    "s3seed": job_s3seed,
    "restore": job_restore,
    "append": job_append,
    "turn": job_turn,
    "turnfloor": job_turnfloor,
    "crashcheck": job_crashcheck,
    "summarizing": lambda job: importlib.import_module("bench.workloads.summarizing").job(job),
}


def main() -> None:
    job = json.loads(sys.stdin.read())
    try:
        result = JOBS[job["op"]](job)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    # Skip interpreter teardown: thread pools of finished agents add nothing to measure.
    os._exit(0)


if __name__ == "__main__":
    main()
