#!/usr/bin/env python3
"""Write a C file holding the given files, for echo-chat to serve.

    embed.py OUTPUT.c FILE...

Each file becomes one entry of web_assets[] (web_assets.h): its URL path
"/NAME", a content type from its extension, its bytes and length."""

import os
import sys

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def main():
    out, files = sys.argv[1], sys.argv[2:]
    lines = ['#include "web_assets.h"', ""]
    entries = []
    for i, path in enumerate(files):
        name = os.path.basename(path)
        ext = os.path.splitext(name)[1]
        if ext not in TYPES:
            sys.exit("embed.py: no content type for %s" % name)
        data = open(path, "rb").read()
        lines.append("static const unsigned char asset%d[] = {" % i)
        for j in range(0, len(data), 16):
            lines.append("\t" + ", ".join(str(b) for b in data[j:j + 16]) +
                         ",")
        lines.append("\t0};")
        entries.append('\t{"/%s", "%s", asset%d, %d},'
                       % (name, TYPES[ext], i, len(data)))
    lines.append("")
    lines.append("const struct web_asset web_assets[] = {")
    lines.extend(entries)
    lines.append("};")
    lines.append("const size_t web_nassets = %d;" % len(entries))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
