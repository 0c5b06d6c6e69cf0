#!/usr/bin/env bash
# Sends a notification to one user's feed through the broker's HTTP publish API (docs/API.md):
#
#   STOMPWS_API_KEY=KEY examples/notifications/notify.sh alice 'Your report is ready'
#
# The message goes to /topic/notifications.USER, which the user's page subscribes to. KEY is one
# of the keys in the file given to the broker with --api-key-file. The broker's address is
# STOMPWS_URL (default http://127.0.0.1:15674, the WebSocket port, which serves the API too).
# Prints the broker's answer ({"id":"m-1"}); exits non-zero with its error if it refuses.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: STOMPWS_API_KEY=KEY $0 USER MESSAGE" >&2
    exit 2
fi
user=$1
message=$2
# The user is one segment of the destination: no '.', and no wildcard characters.
if ! [[ $user =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
    echo "$0: user '$user': 1 to 64 letters, digits, - or _" >&2
    exit 2
fi
if [ -z "${STOMPWS_API_KEY:-}" ]; then
    echo "$0: set STOMPWS_API_KEY to a key from the broker's --api-key-file" >&2
    exit 2
fi
url=${STOMPWS_URL:-http://127.0.0.1:15674}

# The Authorization header is read from stdin (-H @-) so the key never shows in `ps`.
# --data-raw: a message starting with '@' is text, not a file name.
printf 'Authorization: Bearer %s\n' "$STOMPWS_API_KEY" |
    curl -sS --fail-with-body -X POST "$url/api/publish?destination=/topic/notifications.$user" \
        -H @- -H 'Content-Type: text/plain; charset=utf-8' --data-raw "$message"
