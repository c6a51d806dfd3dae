#!/bin/sh
# Stop script of the generic template (the guide's stop.bat: armkill TEL).
case "$REARM_EVENT" in
STOP)
    armkill APP
    ;;
esac
exit 0
