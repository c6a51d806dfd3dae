#!/bin/sh
# Stop script of the nginx template.
case "$REARM_EVENT" in
STOP)
    armkill NGINX
    ;;
esac
exit 0
