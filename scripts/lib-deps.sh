# Shared by the scripts/test-deps*.sh scripts (sourced, not run): which Debian packages are
# missing, and installing them without starting any system service.

# deps_missing TAG PACKAGE...: sets the array `missing` to the packages not installed yet.
deps_missing() {
    local tag=$1 p
    shift
    missing=()
    for p in "$@"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ]; then
            :
        else
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "$tag: nothing to install"
    fi
}

# deps_can_install TAG: false (with a message) without root. The tests that need what is
# missing then skip outside CI and fail in CI, so a developer's run is not stopped here.
deps_can_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "$1: missing ${missing[*]}; run as root to install them (their tests skip)" >&2
        return 1
    fi
}

deps_candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }'
}

# deps_update_lists TAG: fetch the package lists once, only when a missing package has no
# candidate yet (a fresh machine has no lists).
deps_update_lists() {
    local p c
    for p in "${missing[@]}"; do
        c=$(deps_candidate "$p")
        if [ -z "$c" ] || [ "$c" = "(none)" ]; then
            echo "$1: apt-get update (no candidate for $p yet)"
            apt-get update -qq
            return
        fi
    done
}

# deps_forbid_services TAG: a policy-rc.d answering 101 ("action forbidden") while apt-get runs,
# so maintainer scripts start no system service; the machine's own one comes back on exit.
deps_forbid_services() {
    local policy=/usr/sbin/policy-rc.d
    deps_saved_policy=""
    if [ -e "$policy" ]; then
        deps_saved_policy=$(mktemp)
        cp -p "$policy" "$deps_saved_policy"
    fi
    trap deps_restore_policy EXIT
    printf '#!/bin/sh\n# %s: no service starts during this install\nexit 101\n' "$1" >"$policy"
    chmod 755 "$policy"
}

deps_restore_policy() {
    local policy=/usr/sbin/policy-rc.d
    if [ -n "${deps_saved_policy:-}" ]; then
        cp -p "$deps_saved_policy" "$policy"
        rm -f "$deps_saved_policy"
    else
        rm -f "$policy"
    fi
}

# deps_install TAG PACKAGE...: apt-get install, quietly; its output is shown when it fails.
deps_install() {
    local tag=$1 log="/tmp/$1.log"
    shift
    echo "$tag: installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        >"$log" 2>&1 || {
        tail -n 30 "$log" >&2
        return 1
    }
    echo "$tag: installed $* (apt-get output: $log)"
}

# deps_daemon_pids REGEX: the pids of the processes whose name matches REGEX (sorted for comm).
deps_daemon_pids() {
    ps -eo pid=,comm= | awk -v re="$1" '$2 ~ re { print $1 }' | sort
}

# deps_stop_started TAG BEFORE REGEX: stop, by pid, each process matching REGEX that is not in
# BEFORE (what deps_daemon_pids printed before the install): a maintainer script started it
# regardless of policy-rc.d. False when there was any.
deps_stop_started() {
    local tag=$1 before=$2 re=$3 started pid
    started=$(comm -13 <(echo "$before") <(deps_daemon_pids "$re") | sed '/^$/d')
    [ -n "$started" ] || return 0
    for pid in $started; do
        echo "$tag: stopping pid $pid ($(ps -o comm= -p "$pid" || true)), started by the install" >&2
        kill -TERM "$pid" 2>/dev/null || true
    done
    return 1
}
