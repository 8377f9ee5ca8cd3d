#!/usr/bin/env bash
# Installs the Debian packages a purpose needs, only those missing; safe to repeat.
#   runtime  what `make run` needs
#   test     what `make test` needs (CI)
set -euo pipefail

runtime=(ca-certificates bubblewrap libnftables1)
test=("${runtime[@]}" openssl iproute2 nftables util-linux docker-registry skopeo umoci chromium postgresql)

case "${1:-}" in
  runtime) wanted=("${runtime[@]}") ;;
  test) wanted=("${test[@]}") ;;
  *) echo "usage: $0 runtime|test" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
