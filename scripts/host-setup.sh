#!/usr/bin/env bash
# Prepare a Debian/Ubuntu host (root) for prewheel's docker and emulation tiers:
# Docker engine, QEMU user-mode emulation registered with binfmt_misc, and a running dockerd;
# Debian's chromium for the browser tier (headless screenshots of prewheel serve's pages).
# Idempotent: safe to run again; does nothing that is already done.
#
# The handlers are those of every platform prewheel builds for that this host's CPU does not run
# natively (scripts/shared/platforms.sh; on x86_64: qemu-aarch64, qemu-arm, qemu-ppc64le,
# qemu-riscv64, qemu-s390x; i386 runs natively).
# Usage: scripts/host-setup.sh [--print-handlers]   (the latter only lists them, as root or not)
set -euo pipefail

log() { printf '[host-setup] %s\n' "$*" >&2; }

# qemu_handlers_needed
source "$(dirname "${BASH_SOURCE[0]}")/shared/platforms.sh"
BINFMT=/proc/sys/fs/binfmt_misc
mapfile -t handlers < <(qemu_handlers_needed "$(uname -m)")
if [ "${1:-}" = --print-handlers ]; then
  printf '%s\n' "${handlers[@]}"
  exit 0
fi

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
for handler in "${handlers[@]}"; do
  if [ ! -e "/usr/share/binfmts/$handler" ] && [ ! -e "$BINFMT/$handler" ]; then
    need_pkgs+=(qemu-user-static)
    break
  fi
done
command -v update-binfmts >/dev/null 2>&1 || need_pkgs+=(binfmt-support)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -e "$BINFMT/register" ]; then
  log "mounting binfmt_misc"
  mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
missing=()
for handler in "${handlers[@]}"; do
  if [ ! -e "$BINFMT/$handler" ]; then
    log "enabling binfmt handler $handler"
    # Its exit status is not what counts; the entry in binfmt_misc is (checked below).
    update-binfmts --enable "$handler" || true
  elif [ "$(head -n 1 "$BINFMT/$handler")" = disabled ]; then
    log "re-enabling disabled binfmt handler $handler"
    echo 1 >"$BINFMT/$handler" || true
  fi
  if [ ! -e "$BINFMT/$handler" ] || [ "$(head -n 1 "$BINFMT/$handler")" != enabled ]; then
    missing+=("$handler")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "could not register the binfmt handler(s) ${missing[*]}; try \`update-binfmts --enable NAME\`" \
    "(package qemu-user-static) or \`docker run --privileged --rm tonistiigi/binfmt --install all\`"
  exit 1
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/prewheel-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/prewheel-dockerd.log"; exit 1; }
fi
log "docker $(docker version --format '{{.Server.Version}}'), binfmt handlers: ${handlers[*]}"
