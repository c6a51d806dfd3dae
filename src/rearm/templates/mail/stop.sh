#!/bin/sh
# Stop script of the mail template: the guide's Exchange stop.bat (armkill MSIMAP ... MSSA).
case "$REARM_EVENT" in
STOP)
    armkill ${dovecot_watch}
    armkill ${postfix_watch}
    ;;
esac
exit 0
