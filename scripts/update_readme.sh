#!/usr/bin/env bash
# Regenerates README.md's supported-models table from the registry (build/mz list --markdown).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/mz ] || scripts/build.sh >&2
table=$(build/mz list --markdown)
/usr/bin/python3 - "$table" <<'PY'
import re, sys
s = open("README.md").read()
s = re.sub(r"(<!-- models:begin -->\n).*?(<!-- models:end -->)", lambda m: m.group(1) + sys.argv[1] + "\n" + m.group(2),
           s, flags=re.S)
open("README.md", "w").write(s)
PY
echo "README.md: $(build/mz list --markdown | tail -n +3 | wc -l) weights"
