#!/bin/bash
# PID 1 of the mail container: writes Dovecot's master-user passwd-file from the mounted secret
# (the same file the nodes read as master_secret_file), then runs Dovecot and Postfix in the
# foreground side by side, both logging to docker logs. SIGTERM (docker stop) stops both and
# waits for them; if either exits on its own, the other is stopped and the container exits
# non-zero, for `restart: unless-stopped` to start the pair again.
set -euo pipefail

secret_file=${MAIL_MASTER_SECRET_FILE:-/run/secrets/mail-master.secret}
master_user=${MAIL_MASTER_USER:-sessionplane}
if [ ! -r "$secret_file" ]; then
    echo "mail: no master secret at $secret_file: mount one (deploy/compose/mail-master.secret)" >&2
    exit 1
fi
# Its first line, trimmed, as the nodes read it.
secret=$(head -n 1 "$secret_file" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
if [ -z "$secret" ] || [[ $secret == *:* ]]; then
    echo "mail: the master secret in $secret_file is empty or holds a ':'" >&2
    exit 1
fi
(umask 027 && printf '%s:{PLAIN}%s\n' "$master_user" "$secret" >/etc/dovecot/masters)
chgrp dovecot /etc/dovecot/masters
unset secret

# The Maildirs' volume (root's when new); a pid file left by the last run of this container.
chown mail:mail /var/vmail
chmod 0770 /var/vmail
rm -f /run/dovecot/master.pid

dovecot -F &
dovecot=$!
postfix start-fg &
postfix=$!

stop() {
    trap - TERM INT
    echo "mail: stopping Postfix and Dovecot" >&2
    postfix stop >/dev/null 2>&1 || kill -TERM "$postfix" 2>/dev/null || true
    kill -TERM "$dovecot" 2>/dev/null || true
    wait "$postfix" "$dovecot" || true
    exit "${1:-0}"
}
trap stop TERM INT

status=0
wait -n "$dovecot" "$postfix" || status=$?
echo "mail: $(kill -0 "$dovecot" 2>/dev/null && echo Postfix || echo Dovecot) exited ($status)" >&2
stop 1
