#!/bin/sh
# Stop script of the mail template: the guide's Exchange stop.bat (armkill MSIMAP ... MSSA).
case "$REARM_EVENT" in
STOP)
    armkill DOVECOT
    armkill POSTFIX
    ;;
esac
exit 0
