#!/usr/bin/env python3
"""TOML values for check.sh, read with Python's TOML parser (tomllib, 3.11+).

Usage:
  toml-get.py FILE SECTION KEY   the value of KEY in [SECTION] (SECTION
                                 dotted, e.g. profile.pi); nothing when
                                 absent; booleans as true/false
  toml-get.py --crates DIR...    "name version dir" of each DIR holding a
                                 Cargo.toml
  toml-get.py --lock CARGO_LOCK  "name version" of every package from a
                                 registry
"""

import sys
import tomllib


def load(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def value(doc, section, key):
    node = doc
    for part in section.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or key not in node:
        return None
    found = node[key]
    if isinstance(found, bool):
        return "true" if found else "false"
    return str(found)


def main(args):
    if len(args) >= 1 and args[0] == "--crates":
        for directory in args[1:]:
            manifest = directory.rstrip("/") + "/Cargo.toml"
            try:
                doc = load(manifest)
            except FileNotFoundError:
                continue
            package = doc.get("package", {})
            name = package.get("name", "")
            print(name, package.get("version", ""), directory)
        return 0
    if len(args) == 2 and args[0] == "--lock":
        for package in load(args[1]).get("package", []):
            if str(package.get("source", "")).startswith("registry"):
                print(package["name"], package["version"])
        return 0
    if len(args) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    found = value(load(args[0]), args[1], args[2])
    if found is not None:
        print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
