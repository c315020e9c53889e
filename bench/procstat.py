"""Memory of the measuring process, read from /proc (both job scripts run it in their own process)."""


def memory():
    """VmHWM (peak) and VmRSS of this process, in MB."""
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, value = line.split(":", 1)
                values[key] = int(value.split()[0]) / 1024
    return values.get("VmHWM", 0.0), values.get("VmRSS", 0.0)
