#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Run the kernel's checkpatch.pl (from Debian's linux-source-6.1 tarball,
# unpacked once into $1) on the given files. Fails on any error or warning.
set -eu
dir=$1
shift
if [ ! -x "$dir/scripts/checkpatch.pl" ]; then
	tarball=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$tarball" ]; then
		echo "checkpatch: install linux-source-6.1 (apt-get install linux-source-6.1)" >&2
		exit 1
	fi
	mkdir -p "$dir"
	top=$(basename "$tarball" .tar.xz)
	tar -C "$dir" --strip-components=1 -xJf "$tarball" \
		"$top/scripts/checkpatch.pl" "$top/scripts/spelling.txt" \
		"$top/scripts/const_structs.checkpatch"
fi
status=0
for f in "$@"; do
	"$dir/scripts/checkpatch.pl" --no-tree --quiet --show-types \
		--ignore FILE_PATH_CHANGES --file "$f" || status=1
done
[ $status -eq 0 ] && echo "checkpatch: $# files clean"
exit $status
