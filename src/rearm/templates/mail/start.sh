#!/bin/sh
# Start script of the mail template: the guide's Exchange start.bat, on Linux.
#   armload MSMTA  /S /A /R 3 /H 1 /INT 5 MSExchangeMTA  ->  armload POSTFIX ... postfix
#   armload MSIMAP /S /A /R 3 /H 1 /INT 5 IMAP4Svc       ->  armload DOVECOT ... dovecot
#   armload MSPOP  /S /A /R 3 /H 1 /INT 5 POP3svc        ->  (the same Dovecot)
# The other Exchange services have no process of their own here: see docs/porting.md.
set -e  # a failing line fails the group's start: state error, reason in 'rearm status'
case "$REARM_EVENT" in
START)
    # What Debian's postfix unit does before starting: copy the files its chroot needs (the
    # system's own instance only), then `postfix check`, which creates missing queue folders.
    if [ "${postfix_config}" = /etc/postfix ] && [ -x /usr/lib/postfix/configure-instance.sh ]; then
        /usr/lib/postfix/configure-instance.sh -
    fi
    /usr/sbin/postfix -c "${postfix_config}" check
    armload ${postfix_watch} /S /A /R ${retry} /H ${hours} /INT ${interval} /WAIT ${wait} ${postfix_service}
    armload ${dovecot_watch} /S /A /R ${retry} /H ${hours} /INT ${interval} /WAIT ${wait} ${dovecot_service}
    ;;
RECOVER)
    # Only watches started with /SCR come here; run the START lines again.
    REARM_EVENT=START exec "$0" "$@"
    ;;
esac
exit 0
