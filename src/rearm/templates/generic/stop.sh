#!/bin/sh
# Stop script of the generic template (the guide's stop.bat: armkill TEL).
case "$REARM_EVENT" in
STOP)
    armkill ${watch_id}
    ;;
esac
exit 0
