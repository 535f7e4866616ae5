#!/bin/sh
# Runs a command in a root like the ones people run the lab in, set up as a container runtime or a
# chroot builder would. Started by `unshare --mount --net --pid --fork --kill-child --propagation
# private`, so everything mounted here dies with this PID namespace and the machine sees none of it.
# usage: enter_root.sh KIND BASE PROJECT COMMAND [DIR...]
#   overlay:       / is an overlayfs (lower: this machine's /, upper on a tmpfs), entered with pivot_root
#   chroot:        / is a directory that is not a mount point (on a tmpfs), entered with chroot
#   shared-chroot: the same, on a shared mount (as under systemd, where / is shared)
# PROJECT (the checkout and its .venv), /var/cache/ispagent (the lab's rootfs cache) and each DIR
# (e.g. the venv's interpreter outside /usr) are bind-mounted inside at the same paths. COMMAND runs
# with sh -c in PROJECT.
set -eu
kind=$1 base=$2 project=$3 command=$4
shift 4

mount -t tmpfs -o mode=755 tmpfs "$base"
root=$base/root
mkdir "$root"
case $kind in
overlay)
  mkdir "$base/upper" "$base/work"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$root"
  ;;
chroot|shared-chroot)
  if [ "$kind" = shared-chroot ]; then
    mount --make-shared "$base"
  fi
  # A usrmerged Debian userland: /usr and /etc read-only from this machine, the rest its own.
  for dir in usr etc; do
    mkdir "$root/$dir"
    mount --bind "/$dir" "$root/$dir"
    mount -o remount,bind,ro "$root/$dir"
  done
  for link in bin sbin lib lib64; do
    ln -s "usr/$link" "$root/$link"
  done
  mkdir -p "$root/root" "$root/var/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp"
  ;;
*)
  echo "enter_root.sh: unknown kind $kind" >&2
  exit 2
  ;;
esac

mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o nosuid,nodev,noexec sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs "$root/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
# After /tmp and /run: the checkout may live under either. The rootfs cache comes in as a volume
# would: were this machine's / an overlayfs too, overlays over overlays over it would pass the
# kernel's stacking limit of two.
for dir in "$project" /var/cache/ispagent "$@"; do
  mkdir -p "$root/$dir"
  mount --bind "$dir" "$root/$dir"
done
ip link set lo up

cd "$root"
if [ "$kind" = overlay ]; then
  mkdir -p .old-root
  pivot_root . .old-root
  umount -l /.old-root
  rmdir /.old-root
  cd "$project"
  exec /bin/sh -c "$command"
fi
exec chroot . /bin/sh -c "cd '$project' && $command"
