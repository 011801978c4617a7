#!/bin/busybox sh
# /init of an e2e guest: busybox, Debian's kernel modules, /bin/nfse2e.
# Kernel command line keys (written by e2e/run):
#   e2e.host=NAME e2e.dir=OUTDIR e2e.index=N e2e.hosts=N e2e.inc=N
#   e2e.uid=UNIQUE (the NFSv4 client id uniquifier; the same after a restart
#   of the same guest, as a rebooted machine keeps its identity)
/bin/busybox mkdir -p /proc /sys /dev /tmp /lab /mnt/nfs /sbin /usr/bin /usr/sbin /run
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
cut -d' ' -f1 /proc/uptime >/tmp/uptime.init

fail() {
	echo "e2e-init: FAILED: $*"
	sync
	poweroff -f
	sleep 5
}

host=guest uid=""
for kv in $(cat /proc/cmdline); do
	case "$kv" in
	e2e.host=*) host=${kv#e2e.host=} ;;
	e2e.uid=*) uid=${kv#e2e.uid=} ;;
	esac
done
hostname "$host"

# modules in dependency order (the list is made on the host from depends=)
while read -r mod; do
	[ -n "$mod" ] || continue
	case "$mod" in
	*/nfs.ko) insmod "/$mod" ${uid:+nfs4_unique_id=$uid} || fail "insmod $mod" ;;
	*) insmod "/$mod" || fail "insmod $mod" ;;
	esac
done </etc/e2e/modules.list

# qemu user-mode NIC. No default route and no resolver: the only peer is
# 10.0.2.2, which slirp maps to the loopback of the server's namespace.
ip link set lo up
ip link set eth0 up || fail "no eth0"
ip addr add 10.0.2.15/24 dev eth0 || fail "ip addr"
ip route add blackhole 10.0.2.3/32 2>/dev/null # slirp's DNS forwarder: never used
cut -d' ' -f1 /proc/uptime >/tmp/uptime.net

mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none lab /lab || fail "mount 9p lab"

/bin/nfse2e job
echo "e2e-init: job exit code $?"
sync
umount /lab 2>/dev/null
poweroff -f
sleep 5
