#!/bin/sh
# Make a busybox root filesystem tar from Debian's busybox-static: make-busybox-rootfs.sh OUT.tar
set -eu
out=${1:?usage: $0 OUT.tar}
bb=$(command -v busybox || echo /bin/busybox)
[ -x "$bb" ] || { echo "busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/etc" "$tmp/tmp" "$tmp/root" "$tmp/home" "$tmp/var/www" "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/sbin"
chmod 1777 "$tmp/tmp"
cp "$bb" "$tmp/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -s busybox "$tmp/bin/$a"
done
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
daemon:x:1:
wheel:x:10:root
www-data:x:33:
nogroup:x:65534:
G
tar --numeric-owner --owner=0 --group=0 -C "$tmp" -cf "$out" .
