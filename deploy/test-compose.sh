#!/usr/bin/env bash
# Brings up the 2-site compose deployment from this checkout (image built locally), checks that
# both sites become healthy, that a login works at each and a listing of all sites answers,
# that a WAN cut gives the honest 503 and that the sites heal; then tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose -f deploy/docker-compose.yml -p sessionplane)
else
    compose=(docker-compose -f deploy/docker-compose.yml -p sessionplane)
fi
central=http://127.0.0.1:18080
east=http://127.0.0.1:28080
password=example-only-admin-password

cleanup() { "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
fail() { echo "FAILED: $*" >&2; "${compose[@]}" logs --tail 40 >&2 || true; exit 1; }

deploy/build-image.sh
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

# Faults on the containers. A session opened before them must survive, one revoked before them
# must stay revoked, and both sites must come back healthy on their own after each.
session() {
    curl -s -X POST "$1/rest/v1/iam/sessions" -H 'content-type: application/json' \
        -d "{\"domain\":\"master.domain\",\"login\":\"admin\",\"pwd\":\"$password\",\"session_type\":\"token\"}"
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
kept=$(session "$central" | field token)
doomed_answer=$(session "$central")
doomed_token=$(field token <<<"$doomed_answer")
doomed_id=$(field session_id <<<"$doomed_answer")
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$central$sessions/$doomed_id" -H "authorization: Bearer $central_token")
[ "$code" = 204 ] || fail "revoking a session: $code"
current() { curl -s -o /dev/null -w '%{http_code}' "$central/rest/v1/iam/sessions/current" -H "authorization: Bearer $1"; }

leader=$(curl -s "$central/cluster/status" -H "authorization: Bearer $central_token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["groups"][0]["leader"])')
docker kill -s KILL "sessionplane-c$leader" >/dev/null
sleep 2
docker start "sessionplane-c$leader" >/dev/null
wait_healthy
echo "fault: central's leader c$leader killed (SIGKILL) and started again: healthy"
docker pause sessionplane-e2 >/dev/null
sleep 3
docker unpause sessionplane-e2 >/dev/null
wait_healthy
echo "fault: e2 paused for 3 s: healthy"
docker network disconnect sessionplane-central sessionplane-c3
sleep 3
docker network connect --ip 172.28.1.13 sessionplane-central sessionplane-c3
wait_healthy
echo "fault: c3 cut off from central's network for 3 s: healthy"
for node in c1 c2 c3 e1 e2 e3; do
    docker restart "sessionplane-$node" >/dev/null
    wait_healthy
done
echo "fault: rolling restart of the six containers: healthy after each"
[ "$(current "$kept")" = 200 ] || fail "the session opened before the faults is gone"
[ "$(current "$doomed_token")" = 401 ] || fail "the session revoked before the faults answers again"
echo "the kept session survived, the revoked one stayed revoked; compose deployment OK"
