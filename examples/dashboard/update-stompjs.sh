#!/usr/bin/env bash
# Copies the browser build of @stomp/stompjs (bundles/stomp.umd.min.js, unmodified) and its
# licence into the vendor/ folder of each example page, from the version the integration tests
# pin in tests/integration/package-lock.json. The copies are committed so that the pages run with
# nothing but the broker serving them: no npm, no build step, no CDN.
#
# Run it after bumping @stomp/stompjs there; tests/integration/browser.test.mjs fails while a
# vendored copy differs from the pinned package.
set -euo pipefail
cd "$(dirname "$0")/../.."

pkg=tests/integration/node_modules/@stomp/stompjs
if [ ! -f "$pkg/bundles/stomp.umd.min.js" ]; then
    (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
fi
version=$(node -p "require('./$pkg/package.json').version")

for dir in examples/dashboard/vendor examples/notifications/vendor; do
    mkdir -p "$dir"
    cp "$pkg/bundles/stomp.umd.min.js" "$pkg/LICENSE" "$dir/"
    cat >"$dir/README.md" <<EOF
\`stomp.umd.min.js\` is [@stomp/stompjs](https://github.com/stomp-js/stompjs) $version
(\`bundles/stomp.umd.min.js\` of the npm package, unmodified), Apache License 2.0: see \`LICENSE\`.
It defines the global \`StompJs\`. Refresh it with \`examples/dashboard/update-stompjs.sh\`.
EOF
    echo "$dir: @stomp/stompjs $version"
done
