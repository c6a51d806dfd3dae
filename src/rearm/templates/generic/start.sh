#!/bin/sh
# Start script of the generic template: the guide's Telnet example (chapter 8) for any program.
#   armload TEL /S /A /R 2 /H 1 /INT 5 tlntsvr   ->   armload APP /S /A /R 3 /H 1 /INT 5 app
set -e  # a failing line fails the group's start: state error, reason in 'rearm status'
case "$REARM_EVENT" in
START)
    armload ${watch_id} /S /A /R ${retry} /H ${hours} /INT ${interval} /WAIT ${wait} ${service}
    ;;
RECOVER)
    # Only watches started with /SCR come here; run the START lines again.
    REARM_EVENT=START exec "$0" "$@"
    ;;
esac
exit 0
