#!/usr/bin/env bash
# Brings up the 2-site compose deployment from this checkout (image built locally), checks that
# both sites become healthy, that a login works at each and a listing of all sites answers,
# that a WAN cut gives the honest 503 and that the sites heal, that IMAP and submission at c1 are
# relayed to the mail pair (Dovecot, Postfix) and an administrator's disconnect ends them; then
# runs the chaos suite on the containers (tests/it/compose_chaos.rs) and tears everything down.
# Needs root (e3's small disk is a tmpfs mounted here).
set -euo pipefail
cd "$(dirname "$0")/.."

files=(-f deploy/docker-compose.yml -f deploy/docker-compose.small-disk.yml -p sessionplane)
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose "${files[@]}")
else
    compose=(docker-compose "${files[@]}")
fi
central=http://127.0.0.1:18080
east=http://127.0.0.1:28080
password=example-only-admin-password

# e3's data: a 256 MiB filesystem of its own, which the chaos suite fills up.
export SESSIONPLANE_E3_DISK
SESSIONPLANE_E3_DISK=$(mktemp -d)
mount -t tmpfs -o size=256m,uid=10001,gid=10001,mode=0750 tmpfs "$SESSIONPLANE_E3_DISK"

cleanup() { "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
finish() {
    cleanup
    umount "$SESSIONPLANE_E3_DISK" 2>/dev/null || true
    rmdir "$SESSIONPLANE_E3_DISK" 2>/dev/null || true
}
trap finish EXIT
fail() { echo "FAILED: $*" >&2; "${compose[@]}" logs --tail 40 >&2 || true; exit 1; }

# The debug build `cargo test` has already made: a release build would add ~11 minutes to CI.
SESSIONPLANE_IMAGE_PROFILE=${SESSIONPLANE_IMAGE_PROFILE:-debug} deploy/build-image.sh
# Built before the containers start, so that no build competes with them for the cores and the
# disk during the faults.
cargo test --test it --no-run
cleanup
started=$(date +%s)
"${compose[@]}" up -d

healthy() { curl -s -o /dev/null -w '%{http_code}' "$1/healthcheck" 2>/dev/null | grep -q 200 \
    && curl -s "$1/healthcheck" | grep -q '"status":"healthy"'; }
wait_healthy() {
    for _ in $(seq 1 240); do
        healthy "$central" && healthy "$east" && return 0
        sleep 0.5
    done
    fail "the two sites were not healthy within 120 s: $(curl -s "$central/healthcheck") $(curl -s "$east/healthcheck")"
}
wait_healthy
echo "both sites healthy $(( $(date +%s) - started )) s after up"

token() {
    curl -s -X POST "$1/rest/v1/iam/sessions" -H 'content-type: application/json' \
        -d "{\"domain\":\"master.domain\",\"login\":\"admin\",\"pwd\":\"$password\",\"session_type\":\"token\"}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
# The first administrator is created at central; east has it once the directory reached it.
# (At most four tries: five failures would ban the login for three minutes.)
login() {
    for _ in 1 2 3 4; do token "$1" 2>/dev/null && return 0; sleep 1.5; done
    return 1
}
central_token=$(login "$central") || fail "no login at central"
login "$east" >/dev/null || fail "no login at east"
sessions="/rest/v1/master/logicalroles/ws/sessions"
listed=$(curl -s -w '\n%{http_code}' "$central$sessions?sites=all" -H "authorization: Bearer $central_token")
[ "$(tail -1 <<<"$listed")" = 200 ] || fail "list of all sites: $listed"
grep -q '"site":"east"' <<<"$listed" || fail "no east session in the list of all sites: $listed"
echo "a listing of all sites from central shows both sites"

# The example application behind every node's /app/ route: it is told who calls, never the token.
app=$(curl -s -w '\n%{http_code}' "$central/app/whoami" -H "authorization: Bearer $central_token")
[ "$(tail -1 <<<"$app")" = 200 ] || fail "the application through c1's proxy: $app"
grep -q '"x-sessionplane-user":"admin@master.domain"' <<<"$app" \
    || fail "the application was not told who calls: $app"
grep -q "$central_token" <<<"$app" && fail "the application saw the session token"
code=$(curl -s -o /dev/null -w '%{http_code}' "$central/app/whoami")
[ "$code" = 303 ] || fail "the application without a session: $code, not a redirect to /login"
echo "the example application answers through the proxy, with the caller's identity"

# The honest answer to a listing of all sites while east is cut off, and the heal after it.
for node in e1 e2 e3; do docker network disconnect sessionplane-wan "sessionplane-$node"; done
code=$(curl -s -o /tmp/sessionplane-cut.json -w '%{http_code}' "$central$sessions?sites=all" \
    -H "authorization: Bearer $central_token")
[ "$code" = 503 ] && grep -q east /tmp/sessionplane-cut.json || fail "WAN cut: $code $(cat /tmp/sessionplane-cut.json)"
echo "WAN cut: 503 naming east"
for node in e1 e2 e3; do
    docker network connect --ip "172.28.0.2${node#e}" sessionplane-wan "sessionplane-$node"
done
wait_healthy
echo "healed"

# The mail pair behind the nodes' mail listeners (deploy/mail/). alice@example.org is a user
# of the directory (created here) and of Dovecot (deploy/mail/users); she logs in at c1's
# published IMAP and submission ports with her directory password, STARTTLS first (the nodes'
# certificates are self-signed: not verified here), and c1 logs in to Dovecot and Postfix for
# her as their master user. Then an administrator's disconnect ends her IMAP connection.
mail_user=alice@example.org
mail_password=example-only-alice-password
# Writes to the directory right after the heal may meet a new election: a few tries.
admin_put() {
    local path=$1 body=${2:-} code
    for _ in $(seq 1 20); do
        code=$(curl -s -o /tmp/sessionplane-put.json -w '%{http_code}' -X PUT "$central$path" \
            -H "authorization: Bearer $central_token" -H 'content-type: application/json' \
            ${body:+-d "$body"})
        case $code in 2??|409) return 0 ;; 5??|000) sleep 0.5 ;; *) break ;; esac
    done
    fail "PUT $path: $code $(cat /tmp/sessionplane-put.json)"
}
admin_put /domains/example.org
admin_put "/users/$mail_user" "{\"password\":\"$mail_password\"}"
MAIL_USER=$mail_user MAIL_PASSWORD=$mail_password API=$central TOKEN=$central_token \
    IMAP_PORT=18143 SMTP_PORT=18587 python3 - <<'PY' || fail "mail through c1"
import imaplib, json, os, smtplib, ssl, time, urllib.request, uuid

user, password = os.environ["MAIL_USER"], os.environ["MAIL_PASSWORD"]
api, token = os.environ["API"], os.environ["TOKEN"]
TIMEOUT = 20  # seconds, for every socket operation and every wait
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE  # the nodes' certificates are self-signed
mark = uuid.uuid4().hex[:12]


def check(what, condition, detail=""):
    if not condition:
        raise SystemExit(f"mail: {what} {detail}")


def ok(answer, what):
    status, data = answer
    check(what, status == "OK", f"answered {status} {data}")
    return data


def find(imap, subject):
    """The sequence numbers of the INBOX's messages whose subject holds `subject`."""
    ok(imap.noop(), "NOOP")
    return ok(imap.search(None, "SUBJECT", subject), "SEARCH")[0].split()


def fetch(imap, number):
    return ok(imap.fetch(number, "(BODY.PEEK[])"), "FETCH")[0][1]


def channels(method="GET"):
    request = urllib.request.Request(f"{api}/servers/channels/{user}", method=method,
                                     headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        return answer.status, answer.read()


def message(subject, text):
    return f"From: {user}\r\nTo: {user}\r\nSubject: {subject}\r\n\r\n{text}\r\n"


imap = imaplib.IMAP4("127.0.0.1", int(os.environ["IMAP_PORT"]), timeout=TIMEOUT)
ok(imap.starttls(ssl_context=tls), "STARTTLS at c1")
ok(imap.login(user, password), "LOGIN at c1")
ok(imap.select("INBOX"), "SELECT INBOX")
appended = message(f"appended-{mark}", "APPENDed through c1.").encode()
ok(imap.append("INBOX", None, None, appended), "APPEND")
found = find(imap, f"appended-{mark}")
check("the appended message is in INBOX once:", len(found) == 1, f"found {found}")
stored = fetch(imap, found[0])
check("the appended message comes back as sent:", stored == appended, f"{stored!r}")
print("IMAP at c1 is Dovecot's: LOGIN, SELECT, APPEND, FETCH")

with smtplib.SMTP("127.0.0.1", int(os.environ["SMTP_PORT"]), timeout=TIMEOUT) as smtp:
    smtp.starttls(context=tls)
    smtp.login(user, password)
    refused = smtp.sendmail(user, [user], message(f"submitted-{mark}", "Submitted through c1."))
    check("the submission was refused:", not refused, f"{refused}")
deadline = time.monotonic() + TIMEOUT
while not (found := find(imap, f"submitted-{mark}")):
    check("the submitted message is not in INBOX", time.monotonic() < deadline, f"after {TIMEOUT} s")
    time.sleep(0.5)
check("the submitted message's text:", b"Submitted through c1." in fetch(imap, found[0]))
print("submission at c1 is Postfix's: the message arrived in the INBOX")

# The held IMAP connection ends when an administrator disconnects the user.
status, listed = channels()
check("c1 lists the IMAP channel:", any(c["protocol"] == "IMAP" for c in json.loads(listed)),
      listed.decode())
status, _ = channels("DELETE")
check("DELETE /servers/channels:", status == 204, f"answered {status}")
lines = []
while not (lines and lines[-1].startswith(b"* BYE")):
    line = imap.readline()  # times out after TIMEOUT
    check("no * BYE before the connection closed:", line, f"{lines}")
    lines.append(line)
deadline = time.monotonic() + TIMEOUT
while json.loads(channels()[1]):
    check("the channel is still listed", time.monotonic() < deadline, f"after {TIMEOUT} s")
    time.sleep(0.5)
print(f"an administrator's disconnect ended the IMAP connection: {lines[-1].decode().strip()}")
PY

# Faults on the containers under a steady load, judged like tests/it/chaos.rs. It starts by waiting
# for every node to see a directory leader again after the WAN cut above.
# The suite is the compose_chaos module of the one test binary, `#[ignore]`d in a plain run.
cargo test --test it compose_chaos:: -- --ignored --nocapture \
    || fail "the chaos suite on the containers"
echo "compose deployment OK"
