"""The benchmark's table, ratios and targets, from the results dict of ``bench.py``.

``python bench/report.py bench/results/FILE.json`` prints it again.
"""

import json
import os
import statistics
import sys

from cron_server import describe

MB = 1024 * 1024


def median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def fmt(value, pattern="%.1f"):
    return "-" if value is None else pattern % value


def summarize(runs):
    """Median wall, rate and MB/s over runs (rates per run, then median)."""
    walls = [run["wall"] for run in runs]
    rates = [run["messages"] / run["wall"] for run in runs if run.get("wall")]
    mbps = [run.get("bytes", 0) / MB / run["wall"] for run in runs if run.get("wall")]
    return {
        "runs": len(runs), "wall": median(walls), "rate": median(rates), "mbps": median(mbps),
        "messages": median([run["messages"] for run in runs]),
        "peak": median([run.get("peak_rss_mb") for run in runs]),
        "spread": (min(walls), max(walls)) if walls else None,
    }


def commands_note(runs, key):
    per_folder = {}
    for run in runs:
        for folder, values in (run.get(key) or {}).items():
            per_folder.setdefault(folder, []).extend(values if isinstance(values, list) else [values])
    if not per_folder:
        return "", None
    worst = max(max(values) for values in per_folder.values())
    return "round trips/folder " + ", ".join("%s %s" % (folder, max(values))
                                             for folder, values in sorted(per_folder.items())), worst


def first_sync_notes(runs):
    last = runs[-1]
    linked = last.get("linked") or {}
    notes = ["stored and linked (%s)" % ", ".join("%s: %d" % item for item in linked.items())
             if last.get("link_fields") else "stored (no linking code present)",
             "RSS before %.0f MB" % median([run["rss_before_mb"] for run in runs])]
    worker_peak = max(run.get("worker_peak_rss_mb") or 0 for run in runs)
    if worker_peak:
        notes.append("parse worker process peak RSS %.0f MB" % worker_peak)
    if last.get("failures"):
        notes.append("%d failures recorded" % last["failures"])
    return notes


def part_notes(part, runs, data):
    notes = []
    last = runs[-1]
    if part == "odoo_first":
        notes += first_sync_notes(runs)
    if part in ("odoo_nochange", "engine_nochange"):
        note, worst = commands_note(runs, "folder_commands" if part == "odoo_nochange" else "commands")
        data["worst_commands"] = worst
        notes.append(note)
    if part.startswith("cronserver"):
        notes.append("dup keys %d, dup locations %d, dup history entries %d, stored %d/%d" % (
            last["duplicate_keys"], last["duplicate_locations"], last["history_duplicates"], last["messages"],
            last["expected"]))
        notes.append("sync action runs (s from due): %s; idle after %.1f s" % (
            ", ".join(describe(job) for job in last["jobs"]), last["wall_idle"]))
        cpu = last["cpu_s"]
        notes.append("CPU s: cron workers %s (nice %s; with their parse processes), odoo-bin in all %.0f, "
                     "PostgreSQL %.0f, Dovecot %.0f, "
                     "others on the machine %.0f; machine CPU busy %.0f %%" % (
                         " + ".join(fmt(worker["cpu_s"], "%.0f") for worker in last["per_worker"]),
                         "/".join(fmt(worker["nice"], "%d") for worker in last["per_worker"]), cpu["odoo-bin"],
                         cpu["postgresql"], cpu["dovecot"],
                         cpu["machine"] - cpu["odoo-bin"] - cpu["postgresql"] - cpu["dovecot"],
                         100 * last["machine_cpu_busy"]))
        if last.get("limits") == "odoo":
            notes.append("Odoo's default prefork limits")
        if last.get("limit_hits"):
            notes.append("workers stopped by a limit: %s" % "; ".join(
                "pid %d: %s" % (pid, message) for pid, message in last["limit_hits"]))
        failed = sum(run["failed_jobs"] for run in runs)
        if failed:
            notes.append("%d failed sync action runs over %d runs" % (failed, len(runs)))
    if part.startswith("workers"):
        notes.append("dup keys %d, dup locations %d, stored %d/%d" % (
            last["duplicate_keys"], last["duplicate_locations"], last["messages"], last["expected"]))
        if "machine_cpu_busy" in last:
            notes.append("per worker: %s; machine CPU busy %.0f %%" % (", ".join(
                "%d msgs, %.0f s CPU" % (worker["messages"], worker["cpu_s"]) for worker in last["per_worker"]),
                100 * last["machine_cpu_busy"]))
    return notes


def render(results):
    meta = results.get("meta", {})
    runs = results.get("runs", {})
    lines = ["onpipeline_mail sync benchmark — %s, %s cores, %s, git %s, %s s" % (
        meta.get("date"), meta.get("cores"), meta.get("machine"), meta.get("git"), meta.get("duration_s"))]
    for n, folders in sorted(results.get("mailboxes", {}).items(), key=lambda item: int(item[0])):
        count = sum(folder["messages"] for folder in folders.values())
        size = sum(folder["bytes"] for folder in folders.values())
        lines.append("mailbox N=%s: %s; %.0f MB, %.1f KB/message on average" % (
            n, ", ".join("%s %d" % (name, folder["messages"]) for name, folder in folders.items()),
            size / MB, size / max(count, 1) / 1024))
    for note in results.get("skipped", []):
        lines.append("SKIPPED: " + note)
    header = "%-34s %7s %5s %9s %9s %8s %9s  %s" % ("part", "N", "runs", "wall s", "msg/s", "MB/s", "peakRSS", "notes")
    lines += ["", header, "-" * len(header)]
    summary = {}
    labels = (("raw", "raw download (imapclient)"), ("engine", "engine: fetch + parse"),
              ("engine_worker", "engine: + parse worker"),
              ("engine_nochange", "engine: no-change sync"), ("odoo_first", "Odoo first sync (cron)"),
              ("odoo_nochange", "Odoo no-change sync (cron)"), ("odoo_new100", "Odoo sync of 100 new (cron)"),
              ("fetchmail", "Odoo fetchmail -> crm.lead"),
              ("workers1", "mailboxes, 1 cron worker"), ("workers2", "mailboxes, 2 cron workers"),
              ("cronserver1", "Odoo server, 1 cron worker"), ("cronserver2", "Odoo server, 2 cron workers"))
    for n, parts in sorted(runs.items(), key=lambda item: (not item[0].isdigit(), item[0].zfill(9))):
        for part, label in labels:
            if part not in parts:
                continue
            data = summarize(parts[part])
            summary[(n, part)] = data
            notes = part_notes(part, parts[part], data)
            if data["spread"] and data["runs"] > 1:
                notes.append("wall %.2f-%.2f" % data["spread"])
            label_n = n if n.isdigit() else ("%d" % data["messages"] if data["messages"] is not None else "")
            lines.append("%-34s %7s %5d %9s %9s %8s %9s  %s" % (
                label, label_n, data["runs"], fmt(data["wall"], "%.2f"), fmt(data["rate"], "%.0f"),
                fmt(data["mbps"], "%.1f"), fmt(data["peak"], "%.0f"), "; ".join(note for note in notes if note)))
    lines += ["", "Ratios (medians of this run) and targets:"]
    lines += targets(summary, results)
    lines += phase_lines(runs, meta.get("cores"))
    return "\n".join(lines)


PHASES = ("fetch", "parse", "store", "link", "history", "commit")


def phase_lines(runs, cores=None):
    """Where the wall time of the Odoo first sync goes, median seconds per phase (bench/odoo_job.py PhaseTimer),
    and what CPU each process spent meanwhile."""
    lines = []
    for n, parts in sorted(runs.items(), key=lambda item: item[0].zfill(9)):
        timed = [run for run in parts.get("odoo_first", []) if run.get("phases")]
        if not timed:
            continue
        wall = median([run["wall"] for run in timed])
        seconds = {phase: median([run["phases"].get(phase, 0.0) for run in timed]) for phase in PHASES}
        seconds["other"] = max(wall - sum(seconds.values()), 0.0)
        lines += ["", "N=%s Odoo first sync, where the %.1f s go (medians): %s" % (n, wall, ", ".join(
            "%s %.1f s (%.0f %%)" % (phase, value, 100 * value / wall) for phase, value in seconds.items()))]
        lines += cpu_lines(n, parts.get("odoo_first", []), cores)
    return lines


#: The processes of a first sync whose CPU seconds are shown (bench/odoo_job.py CpuMeter), and their names.
CPU_PROCESSES = (("sync_process", "sync process"), ("parse_worker", "parse worker"),
                 ("postgresql", "PostgreSQL"), ("dovecot", "Dovecot"))


def cpu_total(run):
    """CPU seconds of a run's sync over the processes of CPU_PROCESSES, with PostgreSQL's background
    processes (the whole cluster rather than the database's backends alone, when it was measured)."""
    cpu = run["cpu_seconds"]
    postgresql = cpu["postgresql_cluster"] if cpu.get("postgresql_cluster") is not None else cpu["postgresql"]
    return cpu["sync_process"] + cpu["parse_worker"] + postgresql + (cpu.get("dovecot") or 0.0)


def cpu_lines(n, runs, cores):
    """CPU seconds each process spent during the Odoo first sync (medians), their total, and how many
    cores that kept busy on average: the floor of a sync that is CPU-bound."""
    measured = [run for run in runs if run.get("cpu_seconds")]
    if not measured:
        return []
    seconds = {key: median([run["cpu_seconds"].get(key) for run in measured]) for key, _name in CPU_PROCESSES}
    background = median([run["cpu_seconds"].get("postgresql_cluster") - run["cpu_seconds"]["postgresql"]
                         for run in measured if run["cpu_seconds"].get("postgresql_cluster") is not None])
    total, wall = median([cpu_total(run) for run in measured]), median([run["wall"] for run in measured])
    parts = ["%s %s" % (name, fmt(seconds[key])) for key, name in CPU_PROCESSES]
    if background is not None:
        parts[2] += " (+%.1f in the rest of its cluster: WAL writer, checkpointer, autovacuum)" % background
    line = "N=%s Odoo first sync, CPU seconds (medians): %s; total %.1f in %.1f s of wall = %.2f of %s cores" % (
        n, ", ".join(parts), total, wall, total / wall, cores or "?")
    notes = []
    alive = max(run["cpu_seconds"].get("children_alive", 0) for run in measured)
    if alive:
        notes.append("%d child process(es) still alive at the end, read from /proc" % alive)
    gone = max(run["cpu_seconds"].get("backends_gone", 0) for run in measured)
    if gone:
        notes.append("%d backend(s) of the database exited during the sync: only in the cluster's figure" % gone)
    return [line + ("; " + "; ".join(notes) if notes else "")]


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def size_targets(summary, n, fetchmail):
    out = []
    raw, engine, first = (summary.get((n, part)) for part in ("raw", "engine", "odoo_first"))
    if raw and engine:
        out.append("  N=%s engine / raw download rate: %.0f %%" % (n, 100 * ratio(engine["rate"], raw["rate"])))
    engine_worker = summary.get((n, "engine_worker"))
    if raw and engine_worker:
        out.append("  N=%s engine with a parse worker / raw download rate: %.0f %%" % (
            n, 100 * ratio(engine_worker["rate"], raw["rate"])))
    if raw and first:
        value = ratio(first["rate"], raw["rate"])
        out.append("  N=%s Odoo first sync / raw download rate: %.1f %%  (target >= 25 %%: %s)" % (
            n, 100 * value, "MET" if value >= 0.25 else "MISSED"))
    if first and fetchmail:
        value = ratio(first["rate"], fetchmail["rate"])
        out.append("  N=%s Odoo first sync / fetchmail rate: %.1fx  (target >= 20x: %s; fetchmail on %d messages)"
                   % (n, value, "MET" if value >= 20 else "MISSED", fetchmail["messages"]))
    for part, name in (("odoo_nochange", "Odoo"), ("engine_nochange", "engine")):
        data = summary.get((n, part))
        if data:
            ok = (data.get("worst_commands") or 99) <= 3 and (int(n) > 10000 or data["wall"] < 0.5)
            out.append("  N=%s %s no-change sync: %.3f s, at most %s round trips per folder  "
                       "(target <= 3 and < 0.5 s at 10,000: %s)" % (
                           n, name, data["wall"], data.get("worst_commands"), "MET" if ok else "MISSED"))
    return out


def scale_targets(summary, small, big):
    out = []
    for part, name in (("odoo_nochange", "Odoo"), ("engine_nochange", "engine")):
        a, b = summary.get((small, part)), summary.get((big, part))
        if a and b:
            out.append("  %s no-change sync N=%s vs N=%s: %.3f s vs %.3f s (target not slower: %s)" % (
                name, big, small, b["wall"], a["wall"], "MET" if b["wall"] <= a["wall"] * 1.2 else "MISSED"))
    a, b = summary.get((small, "odoo_first")), summary.get((big, "odoo_first"))
    if a and b:
        delta = b["peak"] - a["peak"]
        out.append("  peak RSS of a first sync N=%s - N=%s: %+.0f MB  (target <= 50 MB: %s)" % (
            big, small, delta, "MET" if delta <= 50 else "MISSED"))
    return out


def targets(summary, results):
    out = []
    sizes = sorted({int(n) for n, _part in summary if n.isdigit()})
    fetchmail = summary.get(("fetchmail", "fetchmail"))
    for n in map(str, sizes):
        out += size_targets(summary, n, fetchmail)
    if len(sizes) > 1:
        out += scale_targets(summary, str(sizes[0]), str(sizes[-1]))
    one, two = summary.get(("workers", "workers1")), summary.get(("workers", "workers2"))
    if one and two:
        value = ratio(two["rate"], one["rate"])
        runs = results["runs"]["workers"]
        duplicates = sum(run["duplicate_keys"] + run["duplicate_locations"] for part in runs.values() for run in part)
        out.append("  2 workers / 1 worker throughput: %.2fx (target >= 1.7x: %s); duplicates: %d (%s)" % (
            value, "MET" if value >= 1.7 else "MISSED", duplicates, "MET" if not duplicates else "MISSED"))
    out += cronserver_target(summary, results)
    return out


def cronserver_target(summary, results):
    """The workers target measured through a real Odoo server's cron worker processes."""
    one, two = summary.get(("cronserver", "cronserver1")), summary.get(("cronserver", "cronserver2"))
    if not (one and two):
        return []
    value = ratio(two["rate"], one["rate"])
    runs = results["runs"]["cronserver"]
    duplicates = sum(run["duplicate_keys"] + run["duplicate_locations"] + run["history_duplicates"]
                     for part in runs.values() for run in part)
    failed = sum(run["failed_jobs"] for part in runs.values() for run in part)
    last = runs["cronserver2"][-1]
    pids = sorted({job["pid"] for job in last["jobs"]})
    return ["  Odoo server, 2 cron workers / 1 cron worker throughput: %.2fx (target >= 1.7x: %s); duplicates: %d "
            "(%s); the two sync actions ran at once for %.1f s in %d processes (%s); failed action runs: %d" % (
                value, "MET" if value >= 1.7 else "MISSED", duplicates, "MET" if not duplicates else "MISSED",
                last["overlap_s"], len(pids), ", ".join(map(str, pids)), failed)]


def profile_text(title, path, limit=25):
    """The top functions of a cProfile dump, by cumulative and by own time."""
    import io  # noqa: PLC0415
    import pstats  # noqa: PLC0415

    out = io.StringIO()
    out.write("== profile: %s (%s)\n" % (title, os.path.basename(path)))
    stats = pstats.Stats(path, stream=out)
    stats.sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)
    return out.getvalue()


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(render(json.load(handle)))
