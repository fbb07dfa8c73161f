#!/usr/bin/env bash
# Brings up the 2-site compose deployment from this checkout (image built locally), checks that
# both sites become healthy, that a login works at each and a listing of all sites answers,
# that a WAN cut gives the honest 503 and that the sites heal; then runs the chaos suite on the
# containers (tests/it/compose_chaos.rs) and tears everything down. Needs root (e3's small disk is
# a tmpfs mounted here).
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

# Faults on the containers under a steady load, judged like tests/it/chaos.rs. It starts by waiting
# for every node to see a directory leader again after the WAN cut above.
# The suite is the compose_chaos module of the one test binary, `#[ignore]`d in a plain run.
cargo test --test it compose_chaos:: -- --ignored --nocapture \
    || fail "the chaos suite on the containers"
echo "compose deployment OK"
