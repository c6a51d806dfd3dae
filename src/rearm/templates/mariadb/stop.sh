#!/bin/sh
# Stop script of the mariadb template: the guide's stop.bat (armkill SQLSERVER).
case "$REARM_EVENT" in
STOP)
    armkill ${watch_id}
    ;;
esac
exit 0
