#!/usr/bin/env bash
# Prepare a Debian/Ubuntu host (root) for prewheel's docker and emulation tiers:
# Docker engine, QEMU user-mode emulation registered with binfmt_misc, and a running dockerd.
# Idempotent: safe to run again; does nothing that is already done.
set -euo pipefail

log() { printf '[host-setup] %s\n' "$*" >&2; }

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /usr/bin/qemu-aarch64-static ] || need_pkgs+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || need_pkgs+=(binfmt-support)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  log "mounting binfmt_misc"
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
for handler in qemu-aarch64 qemu-arm; do
  if [ ! -e "/proc/sys/fs/binfmt_misc/$handler" ]; then
    log "enabling binfmt handler $handler"
    update-binfmts --enable "$handler" || true
  fi
done

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
log "docker $(docker version --format '{{.Server.Version}}'), binfmt: $(ls /proc/sys/fs/binfmt_misc | grep -c qemu) qemu handlers"
