#!/usr/bin/env bash
# Vendor the web dashboard's browser library — uPlot (MIT, charts): fetch
# the pinned release from the npm registry, check the registry's sha512, and write harness/web/static/vendor/
# plus VENDOR.txt (versions, sources, sha256 of each file). The harness never fetches them at run time; run this
# only to move a pin (edit the versions and integrities, run, commit).
set -euo pipefail
VERSION=${VERSION:-1.6.32}
INTEGRITY=${INTEGRITY:-sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==}
cd "$(dirname "$0")/.."
dest=harness/web/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fetch() {  # NAME URL INTEGRITY: unpack the checked tarball into $tmp/NAME
  curl -fsSL "$2" -o "$tmp/$1.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/$1.tgz" | base64 -w0)"
  [ "$got" = "$3" ] || { echo "$2: integrity $got, expected $3" >&2; exit 1; }
  mkdir -p "$tmp/$1" && tar -xzf "$tmp/$1.tgz" -C "$tmp/$1"
}
fetch uplot "https://registry.npmjs.org/uplot/-/uplot-${VERSION}.tgz" "$INTEGRITY"
rm -rf "$dest" && mkdir -p "$dest"
cp "$tmp/uplot/package/dist/uPlot.iife.min.js" "$tmp/uplot/package/dist/uPlot.min.css" "$dest/"
cp "$tmp/uplot/package/LICENSE" "$dest/uPlot.LICENSE"
{
  echo "uPlot ${VERSION} (MIT), https://registry.npmjs.org/uplot/-/uplot-${VERSION}.tgz ${INTEGRITY}"
  (cd "$dest" && sha256sum uPlot.iife.min.js uPlot.min.css uPlot.LICENSE)
} > "$dest/VENDOR.txt"
cat "$dest/VENDOR.txt"
