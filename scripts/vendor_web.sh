#!/usr/bin/env bash
# Vendor the web client's third-party files from the npm registry; the result is committed, so
# `make dev` never needs npm. Run this only to upgrade (change a version) and commit what it writes.
#
# - @msgpack/msgpack (ESM build): the MessagePack codec of the WebSocket frames, into
#   ftl/web/static/vendor/msgpack/.
# - swagger-ui-dist: the interactive API docs served at /api/docs (the bundle and its CSS), into
#   ftl/web/static/vendor/swagger-ui/.
#
# `npm pack` fetches the published tarball from the npm registry and checks it against the
# registry's integrity hash; we copy the files the page loads and the licence, nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v npm >/dev/null || { echo "vendor_web.sh: npm is required (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# unpack PACKAGE VERSION: the package's files in $work/<name>/package
unpack() {
  local package="$1" version="$2" dir="$work/$(basename "$1")"
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent "$package@$version" >/dev/null)
  tar -xzf "$dir"/*.tgz -C "$dir"
  local got
  got="$(node -p "require('$dir/package/package.json').version")"
  [ "$got" = "$version" ] || { echo "vendor_web.sh: $package: expected $version, got $got" >&2; exit 1; }
  echo "$dir/package"
}

# copy_js SRC DEST: without the trailing source-map comment (the .map files are not vendored)
copy_js() { mkdir -p "$(dirname "$2")"; sed '/^\/\/# sourceMappingURL=/d' "$1" > "$2"; }

PACKAGE="@msgpack/msgpack"
VERSION="3.1.3"
DEST="ftl/web/static/vendor/msgpack"
src="$(unpack "$PACKAGE" "$VERSION")"
rm -rf "$DEST"
mkdir -p "$DEST"
(cd "$src/dist.esm" && find . -name '*.mjs' -print0 | while IFS= read -r -d '' f; do
  copy_js "$f" "$OLDPWD/$DEST/$f"
done)
cp "$src/LICENSE" "$DEST/LICENSE"
printf '%s@%s (dist.esm from the npm registry; regenerate with scripts/vendor_web.sh)\n' \
  "$PACKAGE" "$VERSION" > "$DEST/VERSION"
echo "vendored $PACKAGE@$VERSION into $DEST ($(find "$DEST" -name '*.mjs' | wc -l) modules)"

PACKAGE="swagger-ui-dist"
VERSION="5.35.0"
DEST="ftl/web/static/vendor/swagger-ui"
src="$(unpack "$PACKAGE" "$VERSION")"
rm -rf "$DEST"
mkdir -p "$DEST"
copy_js "$src/swagger-ui-bundle.js" "$DEST/swagger-ui-bundle.js"
sed '/^\/\*# sourceMappingURL=/d' "$src/swagger-ui.css" > "$DEST/swagger-ui.css"
cp "$src/LICENSE" "$src/NOTICE" "$src/swagger-ui-bundle.js.LICENSE.txt" "$DEST/"
printf '%s@%s (swagger-ui-bundle.js and swagger-ui.css from the npm registry; regenerate with scripts/vendor_web.sh)\n' \
  "$PACKAGE" "$VERSION" > "$DEST/VERSION"
echo "vendored $PACKAGE@$VERSION into $DEST"
