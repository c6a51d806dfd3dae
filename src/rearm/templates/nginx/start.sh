#!/bin/sh
# Start script of the nginx template, in the guide's style:
#   armload NGINX /S /A /R 3 /H 1 /INT 5 nginx
set -e  # a failing line fails the group's start: state error, reason in 'rearm status'
case "$REARM_EVENT" in
START)
    # Test the configuration first, as Debian's unit does: a mistake fails the start here,
    # with nginx's own message in the group's log, instead of as a restart loop.
    /usr/sbin/nginx -t -q -c "${config}" -e "${error_log}"
    armload ${watch_id} /S /A /R ${retry} /H ${hours} /INT ${interval} /WAIT ${wait} ${service}
    ;;
RECOVER)
    # Only watches started with /SCR come here; run the START lines again.
    REARM_EVENT=START exec "$0" "$@"
    ;;
esac
exit 0
