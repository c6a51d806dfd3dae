#!/bin/sh
# Start script of the postgresql template: the guide's SQL Server start.bat, on Linux.
#   armload SQLSERVER /S /A /R 3 /H 1 /INT 5 MSSQLSERVER   ->   armload POSTGRES ... postgresql
# (SQLSERVERAGENT has no counterpart to watch: see docs/porting.md.)
set -e  # a failing line fails the group's start: state error, reason in 'rearm status'
case "$REARM_EVENT" in
START)
    # /run is empty after each boot; Debian's own unit has systemd-tmpfiles make this folder.
    install -d -m 2775 -o "${user}" -g "${group}" "${socket_dir}"
    armload ${watch_id} /S /A /R ${retry} /H ${hours} /INT ${interval} /WAIT ${wait} ${service}
    ;;
RECOVER)
    # Only watches started with /SCR come here; run the START lines again.
    REARM_EVENT=START exec "$0" "$@"
    ;;
esac
exit 0
