#!/usr/bin/env bash
# The example program of a man page (between ".\" SRC BEGIN (NAME.c)" and
# ".\" SRC END", the man-pages convention) as C source, and the run the page
# shows (the first .EX block of EXAMPLES before the source, without its
# "$ command" line; empty if the page shows no run).
#
#   scripts/extract-man-example.sh PAGE source|output
set -euo pipefail
page=$1
unescape() { sed -e 's/^\\&$//' -e 's/\\-/-/g' -e 's/\\e/\\/g' -e 's/\\(aq/'"'"'/g' -e 's/\\fB//g; s/\\fP//g; s/\\fI//g; s/\\fR//g'; }
case "$2" in
source)
	sed -n '/^\.\\" SRC BEGIN/,/^\.\\" SRC END/p' "$page" | grep -v '^\.' | unescape ;;
output)
	# Only what comes before the program's source.
	sed -n '/^\.SH EXAMPLES/,/^\.\\" SRC BEGIN/p' "$page" | sed -n '/^\.EX/,/^\.EE/p' |
		sed '/^\.EE/q' | grep -v '^\.' | unescape | grep -v '^\$ ' || true ;;
*) echo "usage: $0 PAGE source|output" >&2; exit 2 ;;
esac
