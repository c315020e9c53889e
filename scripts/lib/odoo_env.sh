# Shared bash functions of scripts/test, scripts/demo and .ci/run. Source it; it sets no options.
#
#   ensure_system_packages   apt-get install what the tests and the demo need (root + apt only)
#   ensure_venv              REPO/.venv with requirements.txt, made with python3
#   find_engine_python       a python with imapclient, aiosmtpd and pytest -> ENGINE_PYTHON
#   odoo_locate              an Odoo 18 to test with -> ODOO_BIN ODOO_PYTHON ODOO_DIR ODOO_ADDONS
#   odoo_ensure_addon_deps   the addon's own requirements in ODOO_PYTHON, and what its tours need
#                            (websocket-client in ODOO_PYTHON, Debian's chromium)
#   pg_start / pg_stop       a private PostgreSQL cluster on 127.0.0.1 -> PG_PORT PG_BIN PG_DATA
#   free_port                an unused TCP port on 127.0.0.1
#
# Odoo is never installed or built here: it is not on any package registry.
# odoo_locate looks for an existing Odoo 18.0:
#   1. ODOO_BIN=/path/to/odoo-bin (+ ODOO_PYTHON, default: a venv/ or .venv/ next to
#      odoo-bin, else python3);
#   2. /opt/odoo18/odoo-bin with /opt/odoo18/venv/bin/python.

ODOO_ENV_REPO=${ODOO_ENV_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SYSTEM_PACKAGES=(dovecot-imapd postgresql openssl ca-certificates)
DEFAULT_ODOO_DIR=${ODOO_DEFAULT_DIR:-/opt/odoo18}

log() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }

is_root() { [ "$(id -u)" = 0 ]; }

# --- system packages and python ------------------------------------------------------------

missing_system_packages() {
    local pkg
    for pkg in "${SYSTEM_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$pkg"
    done
}

# apt-get install the missing packages; needs root and apt. Extra package names may be given.
ensure_system_packages() {
    local extra=() missing
    if ! command -v python3 >/dev/null; then
        extra+=(python3 python3-venv)
    elif ! python3 -c 'import ensurepip, venv' 2>/dev/null && [ "$(command -v python3)" = /usr/bin/python3 ]; then
        extra+=(python3-venv)
    fi
    if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
        warn "setup: no apt-get here; install Dovecot (imapd), PostgreSQL, openssl and python3 by hand"
        return 0
    fi
    missing=$(missing_system_packages "$@" "${extra[@]}")
    if [ -z "$missing" ]; then
        log "setup: system packages present (${SYSTEM_PACKAGES[*]} ${extra[*]})"
        return 0
    fi
    if ! is_root; then
        warn "setup: missing packages:" $missing "— run: sudo apt-get install" $missing
        return 1
    fi
    log "setup: apt-get install" $missing
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

has_python_deps() {  # PYTHON MODULE...
    local python=$1; shift
    [ -x "$python" ] || command -v "$python" >/dev/null || return 1
    local imports
    imports=$(printf 'import %s;' "$@")
    "$python" -c "$imports" 2>/dev/null
}

# REPO/.venv with the addon's requirements (imapclient, aiosmtpd, pytest); skipped when satisfied.
ensure_venv() {
    local venv=${VENV:-$ODOO_ENV_REPO/.venv}
    if has_python_deps "$venv/bin/python" imapclient aiosmtpd pytest; then
        log "setup: $venv ready"
        return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        log "setup: python3 -m venv $venv"
        python3 -m venv "$venv" || return 1
    fi
    log "setup: pip install -r requirements.txt into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$ODOO_ENV_REPO/requirements.txt"
}

# ENGINE_PYTHON: the first of $ENGINE_PYTHON, REPO/.venv, python3 that has the engine's test deps.
find_engine_python() {
    local candidate
    for candidate in ${ENGINE_PYTHON:-} "$ODOO_ENV_REPO/.venv/bin/python" python3; do
        if has_python_deps "$candidate" imapclient aiosmtpd pytest; then
            ENGINE_PYTHON=$candidate
            return 0
        fi
    done
    return 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- Odoo ----------------------------------------------------------------------------------

ODOO_SKIP_HINT="set ODOO_BIN=/path/to/odoo-bin, ODOO_PYTHON=/path/to/python"

# Sets ODOO_BIN ODOO_PYTHON ODOO_DIR ODOO_ADDONS ODOO_VERSION and returns 0 for an Odoo 18.0.
# Otherwise returns 1 with ODOO_MISSING set to why; returns 2 when ODOO_BIN was given but is
# unusable (a configuration error, not a missing Odoo).
odoo_locate() {
    local explicit=0 dir
    ODOO_MISSING=""
    if [ -n "${ODOO_BIN:-}" ]; then
        explicit=1
        if [ ! -f "$ODOO_BIN" ]; then
            ODOO_MISSING="ODOO_BIN=$ODOO_BIN does not exist"
            return 2
        fi
    elif [ -f "$DEFAULT_ODOO_DIR/odoo-bin" ]; then
        ODOO_BIN=$DEFAULT_ODOO_DIR/odoo-bin
    else
        ODOO_MISSING="Odoo 18 not found"
        return 1
    fi
    ODOO_BIN=$(cd "$(dirname "$ODOO_BIN")" && pwd)/$(basename "$ODOO_BIN")
    ODOO_DIR=$(dirname "$ODOO_BIN")
    if [ -z "${ODOO_PYTHON:-}" ]; then
        for dir in venv .venv; do
            if [ -x "$ODOO_DIR/$dir/bin/python" ]; then ODOO_PYTHON=$ODOO_DIR/$dir/bin/python; break; fi
        done
        ODOO_PYTHON=${ODOO_PYTHON:-python3}
    fi
    if ! ODOO_VERSION=$("$ODOO_PYTHON" -c '
import sys
sys.path.insert(0, sys.argv[1])
import odoo.release as r
print("%d.%d" % tuple(r.version_info[:2]))' "$ODOO_DIR" 2>/dev/null); then
        ODOO_MISSING="$ODOO_PYTHON cannot import odoo from $ODOO_DIR"
        return $((explicit ? 2 : 1))
    fi
    if [ "$ODOO_VERSION" != "18.0" ]; then
        ODOO_MISSING="$ODOO_DIR is Odoo $ODOO_VERSION, not 18.0"
        return $((explicit ? 2 : 1))
    fi
    # The standard addons: odoo/addons (base...) and, in a source checkout, addons/ (crm, mail...).
    ODOO_ADDONS=""
    for dir in "$ODOO_DIR/odoo/addons" "$ODOO_DIR/addons"; do
        [ -d "$dir" ] && ODOO_ADDONS=${ODOO_ADDONS:+$ODOO_ADDONS,}$dir
    done
    export ODOO_BIN ODOO_PYTHON ODOO_DIR ODOO_ADDONS ODOO_VERSION
    return 0
}

# The addon's own Python dependencies (imapclient, aiosmtpd) in Odoo's python, and what Odoo's
# HttpCase needs to run the addon's tours: websocket-client and a Chromium (Debian's chromium).
# Installed if missing. Without a browser HttpCase skips the tours, so a missing one is an error.
odoo_ensure_addon_deps() {
    if ! has_python_deps "$ODOO_PYTHON" imapclient aiosmtpd websocket; then
        log "odoo tier: pip install imapclient aiosmtpd websocket-client into $ODOO_PYTHON"
        "$ODOO_PYTHON" -m pip install -q --disable-pip-version-check \
            $(grep -Ei '^(imapclient|aiosmtpd)' "$ODOO_ENV_REPO/requirements.txt") websocket-client || return 1
    fi
    if ! command -v chromium >/dev/null && ! command -v google-chrome >/dev/null; then
        ensure_system_packages chromium || return 1
    fi
}
# --- PostgreSQL ----------------------------------------------------------------------------

# PG_BIN: $PG_BIN, else the newest /usr/lib/postgresql/N/bin (15 on Debian 12).
pg_find_bin() {
    if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/pg_ctl" ]; then return 0; fi
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$PG_BIN" ] && command -v pg_ctl >/dev/null; then PG_BIN=$(dirname "$(command -v pg_ctl)"); fi
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/pg_ctl" ]
}

# Run a PostgreSQL server binary as the cluster owner: postgres when we are root.
pg_run() {
    # From /: the postgres user may not be allowed into the current folder.
    if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# pg_start DIR: a throwaway cluster in DIR/pg, listening on 127.0.0.1:PG_PORT only, trusting
# local connections, with a superuser role "odoo" (Odoo refuses to run as "postgres").
pg_start() {
    local dir=$1
    pg_find_bin || { warn "PostgreSQL server binaries not found (apt-get install postgresql)"; return 1; }
    PG_DATA=$dir/pg
    PG_PORT=$(free_port)
    mkdir -p "$PG_DATA" "$dir/pgsock"
    if is_root; then
        chmod 755 "$dir"
        chown postgres: "$PG_DATA" "$dir/pgsock"
    fi
    pg_run "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale --auth-local=trust --auth-host=trust \
        >"$dir/pg-initdb.log" 2>&1 || { cat "$dir/pg-initdb.log" >&2; return 1; }
    # Durability is pointless for a throwaway test database: fsync off saves minutes.
    pg_run "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$dir/pgsock -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off" >/dev/null \
        || { cat "$PG_DATA/server.log" >&2; return 1; }
    PG_STARTED=$PG_DATA
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE odoo LOGIN CREATEDB SUPERUSER" >/dev/null
}

pg_psql() {  # pg_psql DB SQL: one value per line
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U odoo -d "$1" -qAt -c "$2"
}

pg_stop() {
    if [ -n "${PG_STARTED:-}" ]; then
        pg_run "$PG_BIN/pg_ctl" -D "$PG_STARTED" -m immediate -w stop >/dev/null 2>&1 || true
        PG_STARTED=""
    fi
}
