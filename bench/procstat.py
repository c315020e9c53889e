"""Memory of the measuring process (or of its parse worker), read from /proc (both job scripts use it)."""


def memory(pid="self"):
    """VmHWM (peak) and VmRSS of this process (or of ``pid``), in MB."""
    values = {}
    with open("/proc/%s/status" % pid) as handle:
        for line in handle:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0]) / 1024
    return values.get("VmHWM", 0.0), values.get("VmRSS", 0.0)
