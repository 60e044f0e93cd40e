#!/usr/bin/env bash
# Vendor the web client's one third-party dependency, @msgpack/msgpack (ESM build), into
# ftl/web/static/vendor/msgpack/. The result is committed, so `make dev` never needs npm; run this
# only to upgrade (change VERSION) and commit what it writes.
#
# `npm pack` fetches the published tarball from the npm registry and checks it against the
# registry's integrity hash; we copy the package's own ESM build (dist.esm/*.mjs, relative imports,
# no bundler needed) and its licence, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="@msgpack/msgpack"
VERSION="3.1.3"
DEST="ftl/web/static/vendor/msgpack"

command -v npm >/dev/null || { echo "vendor_web.sh: npm is required (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
src="$work/package"

got="$(node -p "require('$src/package.json').version")"
[ "$got" = "$VERSION" ] || { echo "vendor_web.sh: expected $VERSION, got $got" >&2; exit 1; }

rm -rf "$DEST"
mkdir -p "$DEST"
(cd "$src/dist.esm" && find . -name '*.mjs' -print0 | while IFS= read -r -d '' f; do
  mkdir -p "$OLDPWD/$DEST/$(dirname "$f")"
  # drop the trailing source-map comment: the .map files are not vendored
  sed '/^\/\/# sourceMappingURL=/d' "$f" > "$OLDPWD/$DEST/$f"
done)
cp "$src/LICENSE" "$DEST/LICENSE"
printf '%s@%s (dist.esm from the npm registry; regenerate with scripts/vendor_web.sh)\n' \
  "$PACKAGE" "$VERSION" > "$DEST/VERSION"

echo "vendored $PACKAGE@$VERSION into $DEST ($(find "$DEST" -name '*.mjs' | wc -l) modules)"
