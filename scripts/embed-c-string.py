#!/usr/bin/env python3
"""Write a C file defining `const char NAME[]`, NUL-terminated, with the bytes of a text file
(the build embeds helm/citus-cluster/files/monitoring/monitoring-role.sql this way, so the
binary always carries the file the chart ships). An array of byte values, not a string
literal: C caps the length of a literal it must accept (-Woverlength-strings).
Usage: embed-c-string.py NAME INPUT OUTPUT"""
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 64
    name, src, dst = sys.argv[1:]
    data = open(src, 'rb').read()
    if b'\0' in data:
        print(f'{src}: holds a NUL byte; expected text', file=sys.stderr)
        return 65
    values = [str(b) for b in data + b'\0']
    rows = [', '.join(values[i:i + 20]) for i in range(0, len(values), 20)]
    with open(dst, 'w') as f:
        f.write(f'/* Generated from {src} by scripts/embed-c-string.py: do not edit. */\n')
        f.write(f'extern const char {name}[];\n')
        f.write(f'const char {name}[] = {{\n' + ',\n'.join('    ' + r for r in rows) + '\n};\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
