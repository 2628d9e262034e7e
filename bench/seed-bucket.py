#!/usr/bin/env python3
"""Seed, mutate and check the S3 bucket of the sync benchmark (bench/sync.sh).

Usage:
  seed-bucket.py seed    --objects N --manifest OUT.tsv [--endpoint URL] [--bucket B] [--workers W]
  seed-bucket.py mutate  --objects N --manifest OUT.tsv [--plan OUT.txt] [...]
  seed-bucket.py seed    --site docs --manifest OUT.tsv [...]     (and mutate --site docs)
  seed-bucket.py verify  --manifest M.tsv [--endpoint URL] [--bucket B]
  seed-bucket.py compare --manifest M.tsv --dir DIR [--ignore-compressed] [--details FILE]

`seed` creates the bucket (if needed) and uploads N Jekyll-shaped objects of 1-20 KiB:
  60 %  posts/YYYY/MM/<slug>-<i>/index.html
  10 %  tags/<tag>-<i>/index.html and page/<p>/index.html
  25 %  assets/img/YYYY/<slug>-<i>.jpg|png|webp|svg, assets/js/<name>-<i>.js, assets/css/<name>-<i>.css
   5 %  categories/<name>-<i>/index.html, downloads/<slug>-<i>.pdf, api/<slug>-<i>.json
plus index.html, 404.html, feed.xml, sitemap.xml, robots.txt, favicon.ico, about/ and archive/.
Text types are made of words (they compress like HTML); images, PDFs and the icon are random
bytes. Every object gets a Content-Type from its extension, a Cache-Control
(`public, max-age=31536000, immutable` under assets/, `max-age=600` elsewhere) and an
`x-amz-meta-s3cmd-attrs` header in the format `s3cmd sync` writes. Everything depends only on
N (Python's random.Random(1)), so every run uploads the same bytes.

With `--site docs` (no --objects), `seed` uploads the documentation site of
bench/gen-docs-site.py instead: 1,000 files, about 66 MB, with large text files (a 3.6 MB
search index, a 2.6 MB page, a 1.5 MB JavaScript bundle, a 1 MB sitemap) among ~900 pages of
2-60 KB and 50 images of 50-500 KB. Same headers; deterministic (seed 1).

`mutate` applies the delta once, to a bucket seeded with the same N (random.Random(2)):
1 % of the objects rewritten (half of them same-size edits: one byte changed, like a typo fix;
the other half grown or shrunk) and another 1 % deleted. It writes the manifest of the new state.
With `--site docs` it applies that site's `mutate()`: the same shares, but the rewritten files
include the large ones a rebuild changes (the search index, the sitemap and its .gz, the
changelog; a one-letter fix in the 2.6 MB API page), and only pages are deleted.

The manifest is a TSV of key, MD5 (hex) and size, sorted by key: the expected local tree.
`verify` lists the bucket and checks it against a manifest (ETag = MD5, size).
`compare` hashes every file under DIR and prints one line:
  ok files=N ignored=K    or    bad files=N missing=M stale=S extra=E ignored=K
where missing = in the manifest but not in DIR, stale = present with other bytes, extra = in DIR
but not in the manifest. With --ignore-compressed, files ending in .br or .gz that are not in the
manifest are ignored (pi-failover writes precompressed siblings); they are counted in `ignored`.
"""

import argparse
import hashlib
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor

KIB = 1024
MIN_SIZE, MAX_SIZE = 1 * KIB, 20 * KIB
BASE_MTIME = 1764000000  # 2025-11-24T16:00:00Z: the s3cmd-attrs mtime of the seeded files
EDIT_MTIME = BASE_MTIME + 86400

FIXED = [
    "index.html",
    "404.html",
    "feed.xml",
    "sitemap.xml",
    "robots.txt",
    "favicon.ico",
    "about/index.html",
    "archive/index.html",
]

CONTENT_TYPES = {
    "html": "text/html",
    "xml": "application/xml",
    "txt": "text/plain",
    "css": "text/css",
    "js": "application/javascript",
    "json": "application/json",
    "svg": "image/svg+xml",
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "ico": "image/x-icon",
    "pdf": "application/pdf",
    "gz": "application/gzip",
}
TEXT_EXTS = {"html", "xml", "txt", "css", "js", "json", "svg"}

SYLLABLES = (
    "ka ro mi te su na lo vi pe da ri ko ba ne tu sa mo li ge fa ha ju ze wo qui bra "
    "stel pon dar mex lin tor gal fen rup sol"
).split()


def ext_of(key):
    return key.rsplit(".", 1)[-1] if "." in key.rsplit("/", 1)[-1] else ""


def cache_control(key):
    return "public, max-age=31536000, immutable" if key.startswith("assets/") else "max-age=600"


class Site:
    """The N objects: key -> body. Deterministic in N."""

    def __init__(self, n):
        if n < len(FIXED) + 12:
            raise SystemExit(f"seed-bucket.py: --objects must be at least {len(FIXED) + 12}")
        rng = random.Random(1)
        vocab = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(600)})
        self.vocab = vocab
        # One corpus of words; every text body is a slice of it behind a header of its own.
        sentences, length = [], 0
        while length < 400 * KIB:
            w = [rng.choice(vocab) for _ in range(rng.randint(6, 18))]
            w[0] = w[0].capitalize()
            sentences.append(" ".join(w) + rng.choice("....?!"))
            length += len(sentences[-1]) + 1
        self.corpus = " ".join(sentences).encode()
        keys = list(FIXED)
        page = 1
        for i in range(n - len(FIXED)):
            r = rng.random()
            year, month = rng.randint(2012, 2026), rng.randint(1, 12)
            slug = "-".join(rng.choice(vocab) for _ in range(rng.randint(2, 5)))
            if r < 0.60:
                key = f"posts/{year}/{month:02d}/{slug}-{i}/index.html"
            elif r < 0.70:
                if rng.random() < 0.5:
                    key = f"tags/{rng.choice(vocab)}-{i}/index.html"
                else:
                    page += 1
                    key = f"page/{page}/index.html"
            elif r < 0.95:
                a = rng.random()
                if a < 0.70:
                    ext = rng.choices(["jpg", "png", "webp", "svg"], weights=[50, 30, 15, 5])[0]
                    key = f"assets/img/{year}/{slug}-{i}.{ext}"
                elif a < 0.85:
                    key = f"assets/js/{rng.choice(vocab)}-{i}.js"
                else:
                    key = f"assets/css/{rng.choice(vocab)}-{i}.css"
            else:
                m = rng.random()
                if m < 0.6:
                    key = f"categories/{rng.choice(vocab)}-{i}/index.html"
                elif m < 0.8:
                    key = f"downloads/{slug}-{i}.pdf"
                else:
                    key = f"api/{slug}-{i}.json"
            keys.append(key)
        assert len(set(keys)) == len(keys) == n
        self.bodies = {}
        for key in keys:
            self.bodies[key] = self._body(rng, key, rng.randint(MIN_SIZE, MAX_SIZE))
        self.mtimes = {key: BASE_MTIME for key in keys}

    def _body(self, rng, key, size):
        ext = ext_of(key)
        if ext not in TEXT_EXTS:
            return rng.randbytes(size)
        head, tail = {
            "html": (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{key}</title>'
                     '<link rel="stylesheet" href="/assets/css/main.css"></head>\n<body><main><article><p>',
                     "</p></article></main></body></html>\n"),
            "xml": (f'<?xml version="1.0" encoding="UTF-8"?>\n<feed><!-- {key} --><entry><summary>',
                    "</summary></entry></feed>\n"),
            "svg": (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><title>{key}</title><desc>',
                    "</desc></svg>\n"),
            "css": (f"/* {key} */\n.post-content {{ margin: 0 auto; }}\n/* ", " */\n"),
            "js": (f"// {key}\n(function () {{ 'use strict'; const words = `", "`; }})();\n"),
            "json": (f'{{"key": "{key}", "text": "', '"}\n'),
            "txt": (f"# {key}\n", "\n"),
        }[ext]
        head, tail = head.encode(), tail.encode()
        n = max(0, size - len(head) - len(tail))
        off = rng.randrange(len(self.corpus) - n)
        body = head + self.corpus[off:off + n] + tail
        return body[:size] if len(body) > size else body

    def mutate(self, n):
        """Applies the delta; returns (same_size, resized, deleted) key lists."""
        rng = random.Random(2)
        keys = sorted(self.bodies)
        k = max(1, round(n * 0.01))
        chosen = rng.sample(keys, 2 * k)
        changed, deleted = sorted(chosen[:k]), sorted(chosen[k:])
        rng.shuffle(changed)
        same, resized = sorted(changed[:(k + 1) // 2]), sorted(changed[(k + 1) // 2:])
        letters = b"abcdefghijklmnopqrstuvwxyz"
        for key in same:
            body = bytearray(self.bodies[key])
            pos = rng.randrange(len(body) // 4, 3 * len(body) // 4)
            if ext_of(key) in TEXT_EXTS:
                body[pos] = rng.choice([c for c in letters if c != body[pos]])
            else:
                body[pos] ^= rng.randint(1, 255)
            assert len(body) == len(self.bodies[key]) and bytes(body) != self.bodies[key]
            self.bodies[key] = bytes(body)
            self.mtimes[key] = EDIT_MTIME
        for key in resized:
            body = self.bodies[key]
            delta = rng.randint(64, 2 * KIB)
            if len(body) + delta > MAX_SIZE:
                new = body[:len(body) // 2] + body[len(body) // 2 + delta:]
            elif ext_of(key) in TEXT_EXTS:
                off = rng.randrange(len(self.corpus) - delta)
                mid = len(body) // 2
                new = body[:mid] + self.corpus[off:off + delta] + body[mid:]
            else:
                new = body + rng.randbytes(delta)
            assert len(new) != len(body)
            self.bodies[key] = new
            self.mtimes[key] = EDIT_MTIME
        for key in deleted:
            del self.bodies[key]
            del self.mtimes[key]
        return same, resized, deleted


class DocsSite:
    """The documentation site of bench/gen-docs-site.py, with the mtimes the small site has."""

    def __init__(self):
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen-docs-site.py")
        spec = importlib.util.spec_from_file_location("gen_docs_site", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.site = module.DocsSite(seed=1)
        self.bodies = self.site.bodies
        self.mtimes = {key: BASE_MTIME for key in self.bodies}

    def mutate(self, _n):
        same, resized, deleted = self.site.mutate()
        for key in same + resized:
            self.mtimes[key] = EDIT_MTIME
        for key in deleted:
            del self.mtimes[key]
        return same, resized, deleted


def make_site(args):
    if args.site == "docs":
        if args.objects is not None:
            raise SystemExit("seed-bucket.py: --objects is for --site small; the docs site has a fixed size")
        return DocsSite()
    if args.objects is None:
        raise SystemExit("seed-bucket.py: --objects is required for --site small")
    return Site(args.objects)


def s3cmd_attrs(body, mtime):
    """The x-amz-meta-s3cmd-attrs value `s3cmd sync` stores (uid/gid: the running user's, so
    that s3cmd running as root does not chown the benchmark's files to a stranger)."""
    import grp
    import pwd

    uid, gid = os.getuid(), os.getgid()
    try:
        uname = pwd.getpwuid(uid).pw_name
    except KeyError:
        uname = str(uid)
    try:
        gname = grp.getgrgid(gid).gr_name
    except KeyError:
        gname = str(gid)
    md5 = hashlib.md5(body).hexdigest()
    return (f"atime:{mtime}/ctime:{mtime}/gid:{gid}/gname:{gname}/md5:{md5}/mode:33188/"
            f"mtime:{mtime}/uid:{uid}/uname:{uname}")


def client(args):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=max(10, args.workers),
                      retries={"max_attempts": 5, "mode": "standard"}),
    )


def put_all(s3, args, site, keys):
    def put(key):
        body = site.bodies[key]
        s3.put_object(
            Bucket=args.bucket,
            Key=key,
            Body=body,
            ContentType=CONTENT_TYPES.get(ext_of(key), "application/octet-stream"),
            CacheControl=cache_control(key),
            Metadata={"s3cmd-attrs": s3cmd_attrs(body, site.mtimes[key])},
        )

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for _ in pool.map(put, keys):
            pass


def write_manifest(path, site):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for key in sorted(site.bodies):
            body = site.bodies[key]
            f.write(f"{key}\t{hashlib.md5(body).hexdigest()}\t{len(body)}\n")
    os.replace(tmp, path)


def read_manifest(path):
    out = {}
    with open(path) as f:
        for line in f:
            key, md5, size = line.rstrip("\n").split("\t")
            out[key] = (md5, int(size))
    return out


def cmd_seed(args):
    t0 = time.monotonic()
    site = make_site(args)
    s3 = client(args)
    try:
        s3.create_bucket(Bucket=args.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    existing = list_bucket(s3, args.bucket)
    if existing:
        raise SystemExit(f"seed-bucket.py: bucket {args.bucket} already holds {len(existing)} objects; "
                         "seed a fresh server")
    put_all(s3, args, site, sorted(site.bodies))
    write_manifest(args.manifest, site)
    total = sum(map(len, site.bodies.values()))
    print(f"seeded {len(site.bodies)} objects, {total} bytes in {time.monotonic() - t0:.1f} s")


def cmd_mutate(args):
    t0 = time.monotonic()
    site = make_site(args)
    same, resized, deleted = site.mutate(args.objects)
    s3 = client(args)
    put_all(s3, args, site, same + resized)
    for i in range(0, len(deleted), 1000):
        s3.delete_objects(Bucket=args.bucket,
                          Delete={"Objects": [{"Key": k} for k in deleted[i:i + 1000]], "Quiet": True})
    write_manifest(args.manifest, site)
    if args.plan:
        with open(args.plan, "w") as f:
            for kind, keys in (("same-size", same), ("resized", resized), ("deleted", deleted)):
                for k in keys:
                    f.write(f"{kind}\t{k}\n")
    print(f"mutated: {len(same) + len(resized)} changed ({len(same)} same-size, {len(resized)} resized), "
          f"{len(deleted)} deleted in {time.monotonic() - t0:.1f} s")


def list_bucket(s3, bucket):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = (o["ETag"].strip('"'), o["Size"])
    return out


def cmd_verify(args):
    want = read_manifest(args.manifest)
    got = list_bucket(client(args), args.bucket)
    if got != want:
        missing = len(want.keys() - got.keys())
        extra = len(got.keys() - want.keys())
        differ = sum(1 for k in want.keys() & got.keys() if want[k] != got[k])
        raise SystemExit(f"seed-bucket.py: bucket {args.bucket} does not match {args.manifest}: "
                         f"missing={missing} extra={extra} differ={differ}")
    print(f"bucket {args.bucket} matches the manifest: {len(got)} objects, {sum(s for _, s in got.values())} bytes")


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def cmd_compare(args):
    want = read_manifest(args.manifest)
    missing, stale, extra, ignored = [], [], [], []
    seen = set()
    root = args.dir
    if os.path.isdir(root):
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                key = os.path.relpath(path, root).replace(os.sep, "/")
                if key not in want:
                    if args.ignore_compressed and key.endswith((".br", ".gz")):
                        ignored.append(key)
                    else:
                        extra.append(key)
                    continue
                seen.add(key)
                if not os.path.isfile(path) or md5_file(path) != want[key][0]:
                    stale.append(key)
    missing = sorted(want.keys() - seen)
    files = len(seen) + len(extra)
    if args.details:
        with open(args.details, "w") as f:
            f.write(f"# {root} against {args.manifest}\n")
            for kind, keys in (("missing", missing), ("stale", stale), ("extra", extra)):
                for k in sorted(keys):
                    f.write(f"{kind}\t{k}\n")
    if missing or stale or extra:
        print(f"bad files={files} missing={len(missing)} stale={len(stale)} extra={len(extra)} ignored={len(ignored)}")
    else:
        print(f"ok files={files} missing=0 stale=0 extra=0 ignored={len(ignored)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("seed", "mutate", "verify"):
        s = sub.add_parser(name)
        s.add_argument("--endpoint", default="http://127.0.0.1:9101")
        s.add_argument("--bucket", default="site")
        s.add_argument("--access-key", default="AKTESTKEY123")
        s.add_argument("--secret-key", default="SKTESTSECRET456")
        s.add_argument("--workers", type=int, default=8)
        s.add_argument("--manifest", required=True)
        if name != "verify":
            s.add_argument("--site", choices=("small", "docs"), default="small",
                           help="small: N Jekyll-shaped objects of 1-20 KiB (--objects N); "
                                "docs: bench/gen-docs-site.py's documentation site")
            s.add_argument("--objects", type=int)
        if name == "mutate":
            s.add_argument("--plan")
    c = sub.add_parser("compare")
    c.add_argument("--manifest", required=True)
    c.add_argument("--dir", required=True)
    c.add_argument("--ignore-compressed", action="store_true")
    c.add_argument("--details")
    args = p.parse_args()
    {"seed": cmd_seed, "mutate": cmd_mutate, "verify": cmd_verify, "compare": cmd_compare}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
