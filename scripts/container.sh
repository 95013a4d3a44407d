#!/usr/bin/env bash
# The container image, built and run for real on a machine that reaches Debian's packages
# and PyPI but no image registry (issue 12).
#
#   scripts/container.sh base        a local base image from Debian's packages:
#                                    debootstrap minbase + python3 (skipped when it exists)
#   scripts/container.sh build       our image on that base: podman build --isolation chroot
#   scripts/container.sh run ARGS..  the image's entrypoint with ARGS, from the image's own
#                                    filesystem in a chroot, as the image's user, with the
#                                    image's environment plus every OSAGO_* variable of ours
#
# Why `run` is not `podman run`: this sandbox's rlimits refuse it (the OCI runtime cannot set
# them up), while a chroot into the mounted image runs the very same files. It exec's down to
# osago itself, so a signal to this script's pid reaches osago.
# Settings: OSAGO_IMAGE (localhost/osago:dev), OSAGO_BASE_IMAGE (localhost/osago-base:bookworm),
# DEBIAN_MIRROR (the one apt uses here).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${OSAGO_IMAGE:-localhost/osago:dev}
BASE_IMAGE=${OSAGO_BASE_IMAGE:-localhost/osago-base:bookworm}

install_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    echo "container.sh: installing Debian's ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

base() {
  install_tools
  podman image exists "$BASE_IMAGE" && return 0
  local dir mirror
  mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
  dir=$(mktemp -d)
  echo "container.sh: debootstrap bookworm from ${mirror:-http://deb.debian.org/debian}" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$dir/root" "${mirror:-http://deb.debian.org/debian}" >"$dir/debootstrap.log" 2>&1 \
    || { tail -20 "$dir/debootstrap.log" >&2; return 1; }
  # The build's pip trusts what this machine trusts (a TLS-inspecting proxy's CA included):
  # the machine's bundle, not a registry's, is the one that reaches PyPI from here.
  cp /etc/ssl/certs/ca-certificates.crt "$dir/root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$dir/root/var/cache/apt/archives/"*.deb "$dir/root/var/lib/apt/lists/"*
  tar -C "$dir/root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
}

build() {
  base
  # chroot isolation: no user namespace or OCI runtime, which this sandbox refuses.
  podman build --isolation chroot --build-arg BASE="$BASE_IMAGE" \
    --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    -t "$IMAGE" -f Containerfile . >&2
}

run() {
  local mnt user entry
  mnt=$(podman image mount "$IMAGE")
  user=$(podman image inspect "$IMAGE" --format '{{.Config.User}}')
  entry=$(podman image inspect "$IMAGE" --format '{{join .Config.Entrypoint " "}}')
  local -a env_args
  mapfile -t env_args < <(
    podman image inspect "$IMAGE" --format '{{range .Config.Env}}{{println .}}{{end}}' | grep .
    env | grep '^OSAGO_' || true
  )
  # A private mount namespace: /proc, /dev and a fresh /tmp for the chroot, gone with it.
  exec unshare --mount --propagation private -- /bin/sh -c '
    mnt=$1 user=$2; shift 2
    mount -t proc proc "$mnt/proc"
    mount --rbind /dev "$mnt/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$mnt/tmp"
    exec chroot --userspec="$user:$user" "$mnt" /usr/bin/env -i "$@"
  ' sh "$mnt" "$user" "${env_args[@]}" $entry "$@"
}

case "${1:-}" in
  base) base ;;
  build) build ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/container.sh base | build | run ARGS..." >&2; exit 2 ;;
esac
