#!/bin/sh
# Stop script of the redis template.
case "$REARM_EVENT" in
STOP)
    armkill REDIS
    ;;
esac
exit 0
