"""Engine-side benchmark jobs, one per process (so that each has its own peak RSS).

    python bench/engine_job.py raw|engine|nochange JSON_ARGS

prints one JSON line with the measurements. ``raw`` is the ceiling: every
message of the folders downloaded with imapclient (UID FETCH BODY.PEEK[]
in batches), nothing done with it. ``engine`` is ``sync.sync_folder`` from
an empty state (search, sizes, planned batches, fetch, parse), no Odoo.
``nochange`` runs a first engine sync untimed, then times syncs with the
saved states and counts their IMAP commands per folder.
"""

import contextlib
import cProfile
import json
import sys
import time

import bare_engine  # noqa: E402, F401  (bench/ is the script's folder; before any onpipeline_mail import)
from procstat import memory  # noqa: E402  (bench/ is the script's folder)

from onpipeline_mail.engine import parse_worker, sync  # noqa: E402
from onpipeline_mail.engine.connection import ServerSettings, imap_session  # noqa: E402
from onpipeline_mail.engine.window import window_start  # noqa: E402

FOLDERS = ("INBOX", "Sent")


def settings_from(args):
    return ServerSettings(args["host"], args["port"], args.get("security", "ssl"), args["user"], args["password"],
                          ca_file=args.get("ca_file", ""))


def job_raw(args):
    batch = args.get("batch", 200)
    count = size = 0
    started = time.perf_counter()
    with imap_session(settings_from(args)) as client:
        for folder in args.get("folders", FOLDERS):
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            for index in range(0, len(uids), batch):
                response = client.fetch(uids[index:index + batch], ["BODY.PEEK[]"])
                for data in response.values():
                    body = data.get(b"BODY[]")
                    if body is not None:
                        count += 1
                        size += len(body)
                del response
    wall = time.perf_counter() - started
    peak, _rss = memory()
    return {"messages": count, "bytes": size, "wall": wall, "peak_rss_mb": peak}


def _engine_sync(client, states, batch_size, window, parser=None):
    count = size = 0
    commands = {}
    for folder in FOLDERS:
        before = sync.command_count(client)
        for batch in sync.sync_folder(client, folder, states.get(folder), window, batch_size=batch_size,
                                      parser=parser):
            count += len(batch.messages)
            size += sum(message.meta.size for message in batch.messages)
            states[folder] = batch.state
        commands[folder] = sync.command_count(client) - before
    return count, size, commands


def job_engine(args):
    window = window_start(args.get("window", "6m"))
    profiler = cProfile.Profile() if args.get("profile") else None
    if profiler:
        profiler.enable()
    started = time.perf_counter()
    # worker: batch k+1 parsed in a parse worker process while batch k is fetched and handed over.
    parser = parse_worker.ParseWorker() if args.get("worker") else contextlib.nullcontext()
    with imap_session(settings_from(args)) as client, parser as parser:
        count, size, _commands = _engine_sync(client, {}, args.get("batch", 200), window, parser)
    wall = time.perf_counter() - started
    if profiler:
        profiler.disable()
        profiler.dump_stats(args["profile"])
    peak, _rss = memory()
    return {"messages": count, "bytes": size, "wall": wall, "peak_rss_mb": peak}


def job_nochange(args):
    window = window_start(args.get("window", "6m"))
    states = {}
    with imap_session(settings_from(args)) as client:
        _engine_sync(client, states, args.get("batch", 200), window)
    runs = []
    for _ in range(args.get("repeat", 3)):
        started = time.perf_counter()
        with imap_session(settings_from(args)) as client:
            login_commands = sync.command_count(client)
            count, _size, commands = _engine_sync(client, states, args.get("batch", 200), window)
        runs.append({"wall": time.perf_counter() - started, "messages": count, "commands": commands,
                     "session_commands": login_commands + sum(commands.values()) + 1})
    return {"runs": runs}


JOBS = {"raw": job_raw, "engine": job_engine, "nochange": job_nochange}

if __name__ == "__main__":
    result = JOBS[sys.argv[1]](json.loads(sys.argv[2]))
    print("RESULT " + json.dumps(result))
