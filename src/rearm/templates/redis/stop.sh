#!/bin/sh
# Stop script of the redis template.
case "$REARM_EVENT" in
STOP)
    armkill ${watch_id}
    ;;
esac
exit 0
