#!/usr/bin/python3
"""Check that every error code a man page lists for a function is one the
function's comment in wsa.h lists.

In a page's ERRORS section, a code applies to the functions of the
heading above it ("*wsa_a*(), *wsa_b*():"), or, without one, to every
function the page's SYNOPSIS declares returning int. Inside a code's
text, a label ("*wsa_a*() and *wsa_b*(): ...") narrows what follows it to
those functions, as does a list of them that begins the text, and
"not *wsa_a*()" leaves one out. In wsa.h a
function's comment is the one right above its declaration (or above the
run of declarations it shares); one that lists no code but says "as
wsa_x()" returns what wsa_x() does, and "a WSA_ETOKEN_ code" means any
of them.

Usage: check-errors.py path/to/wsa.h path/to/man
"""
import glob
import os
import re
import sys

FN = re.compile(r"\*(wsa_[a-z0-9_]+)\*\(\)")
FNS = r"((?:\*wsa_[a-z0-9_]+\*\(\)(?:, | and | or )?)+)"
LABEL = re.compile(FNS + ":")


def header_codes(path):
    text = open(path).read()
    codes = set(re.findall(r"X\((WSA_[A-Z_]+), ", text))
    token = {c for c in codes if c.startswith("WSA_ETOKEN_")}
    comment, own, alias = "", {}, {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("/*"):
            block = [line]
            while "*/" not in lines[i]:
                i += 1
                block.append(lines[i])
            comment = "\n".join(block)
        elif line.startswith("WSA_EXPORT"):
            name = re.search(r"(wsa_[a-z0-9_]+)\(", line).group(1)
            found = set(re.findall(r"\bWSA_E[A-Z_]*[A-Z]\b", comment))
            if re.search(r"\bWSA_ETOKEN_ code", comment):
                found |= token
            own[name] = found & codes
            m = re.search(r"\b[Aa]s (wsa_[a-z0-9_]+)\(\)", comment)
            if m and not own[name]:
                alias[name] = m.group(1)
        elif line and not line[0].isspace() and not line.startswith("}"):
            comment = ""  # a declaration of something else ends its run
        i += 1
    for name, target in alias.items():
        while target in alias:
            target = alias[target]
        own[name] = own.get(target, set())
    return own, codes


def synopsis_int_functions(text):
    m = re.search(r"# SYNOPSIS\n(.*?)\n# ", text, re.S)
    return set(re.findall(r"^int (wsa_[a-z0-9_]+)\(", m.group(1), re.M)) \
        if m else set()


def claims(text):
    """(function set or None for the page's, code, line) for each code a
    page's ERRORS section lists."""
    m = re.search(r"^# ERRORS\n(.*?)(?=^# |\Z)", text, re.S | re.M)
    if not m:
        return
    scope, heading = None, ""
    lines = m.group(1).split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        code = re.fullmatch(r"\*(WSA_E[A-Z_]+)\*", line)
        if code:
            desc = []
            while i + 1 < len(lines) and lines[i + 1].startswith("\t"):
                i += 1
                desc.append(lines[i].strip())
            yield from code_claims(scope, code.group(1), " ".join(desc))
        elif line.startswith("*wsa_") or heading:
            heading += " " + line
            if line.endswith(":"):
                scope, heading = set(FN.findall(heading)), ""
        i += 1


def code_claims(scope, code, desc):
    lead = re.match(FNS + " ", desc)
    if lead and not LABEL.match(desc):  # "*wsa_a*() off the thread."
        yield set(FN.findall(lead.group(1))), set(), code
        return
    parts = LABEL.split(desc)
    # parts: text, label, text, label, text...
    if parts[0].strip(" .+") or len(parts) == 1:
        left_out = set()
        for m in re.finditer("not " + FNS, parts[0]):
            left_out |= set(FN.findall(m.group(1)))
        yield scope, left_out, code
    for j in range(1, len(parts), 2):
        yield set(FN.findall(parts[j])), set(), code


def main():
    header, mandir = sys.argv[1:3]
    own, codes = header_codes(header)
    status, checked = 0, 0
    for path in sorted(glob.glob(os.path.join(mandir, "*.3.scd"))):
        text = open(path).read()
        page_fns = synopsis_int_functions(text)
        for fns, left_out, code in claims(text):
            if code not in codes:
                print("%s: %s is no error code" % (path, code))
                status = 1
                continue
            for fn in sorted((page_fns if fns is None else fns) - left_out):
                checked += 1
                if fn not in own:
                    print("%s: %s is not a function of wsa.h" % (path, fn))
                    status = 1
                elif code not in own[fn]:
                    print("%s: %s lists %s, which wsa.h does not list for "
                          "it" % (path, fn, code))
                    status = 1
    if status == 0:
        print("%d codes listed for functions, each in wsa.h" % checked)
    return status


if __name__ == "__main__":
    sys.exit(main())
