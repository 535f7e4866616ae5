#!/bin/sh
# PID 1 of a lab host until it execs sshd. Started by `nsenter --net=NETNS unshare --mount --uts --pid
# --fork --kill-child --propagation private|unchanged`, so it already runs in the host's own network,
# mount, UTS and PID namespaces; until it enters the host's root it uses the control machine's tools.
# usage: LAB_ROOT_SWITCH=pivot|chroot host_init.sh LOWER UPPER WORK ROOT HOSTNAME ADDRESS/PREFIX [PROFILE_DIR]
set -eu
lower=$1 upper=$2 work=$3 root=$4 hostname=$5 address=$6 profile=${7:-}
root_switch=${LAB_ROOT_SWITCH:-pivot}

ip -batch - <<IP
link set lo up
addr add $address dev eth0
link set eth0 up
IP

mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
# Profile (agent/lab/profiles.py): a fake /proc/meminfo for a small server, as lxcfs does.
if [ -n "$profile" ] && [ -f "$profile/meminfo" ]; then
  mount --bind "$profile/meminfo" "$root/proc/meminfo"
fi
mount -t tmpfs -o mode=755,size=64m,nosuid,nodev tmpfs "$root/run"
# Debian's sshd refuses to start without its privilege separation directory.
mkdir -m 755 "$root/run/sshd" "$root/run/lock"

mount -t tmpfs -o mode=755,size=1m,nosuid tmpfs "$root/dev"
cd "$root/dev"
mknod -m 666 null c 1 3
mknod -m 666 zero c 1 5
mknod -m 666 full c 1 7
mknod -m 666 random c 1 8
mknod -m 666 urandom c 1 9
mknod -m 666 tty c 5 0
mkdir pts shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts pts
mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev tmpfs shm
ln -s pts/ptmx ptmx
ln -s /proc/self/fd fd
ln -s /proc/self/fd/0 stdin
ln -s /proc/self/fd/1 stdout
ln -s /proc/self/fd/2 stderr

echo "$hostname" > /proc/sys/kernel/hostname

# An installed (emulated) panel starts at boot, as its service would.
boot='if [ -x /usr/local/mgr5/sbin/ihttpd ]; then
  setsid /usr/local/mgr5/sbin/ihttpd </dev/null >/dev/null 2>&1 &
fi
exec /usr/sbin/sshd -D -e'

cd "$root"
if [ "$root_switch" = chroot ]; then
  # In a chroot / is not a mount point and pivot_root refuses. Mounts outside the new root stay in
  # this namespace but are out of the host's reach, and go when it dies.
  exec chroot . /bin/sh -c "$boot"
fi
# pivot_root(".", ".") stacks the old root on top of the new one; the lazy unmount drops it.
pivot_root . .
umount -l .
cd /
exec /bin/sh -c "$boot"
