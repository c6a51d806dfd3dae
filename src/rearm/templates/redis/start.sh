#!/bin/sh
# Start script of the redis template, in the guide's style:
#   armload REDIS /S /A /R 3 /H 1 /INT 5 redis
set -e  # a failing line fails the group's start: state error, reason in 'rearm status'
case "$REARM_EVENT" in
START)
    # /run is empty after each boot; Debian's own unit has systemd make this folder.
    install -d -m 2755 -o "${user}" -g "${group}" "${rundir}"
    armload ${watch_id} /S /A /R ${retry} /H ${hours} /INT ${interval} /WAIT ${wait} ${service}
    ;;
RECOVER)
    # Only watches started with /SCR come here; run the START lines again.
    REARM_EVENT=START exec "$0" "$@"
    ;;
esac
exit 0
