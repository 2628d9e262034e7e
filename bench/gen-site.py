#!/usr/bin/env python3
"""Generate a deterministic, Jekyll-shaped `_site/` for the HTTPS benchmark.

Usage: bench/gen-site.py OUT_DIR [--seed N]

Writes exactly 200 files (about 5 MB) into OUT_DIR:

  index.html                      15,360 bytes exactly
  YYYY/MM/DD/<slug>/index.html    100 posts, 10-40 KiB each
  tags/<tag>/index.html           60 tag pages
  page2/index.html ... page20/    19 pagination pages
  about/index.html, archive/index.html, 404.html, feed.xml, sitemap.xml, robots.txt
  assets/css/main.css             30,720 bytes      assets/css/syntax.css
  assets/js/main.js               81,920 bytes
  assets/img/photo-1..8.jpg       50-300 KiB of random bytes behind a JPEG header;
                                  photo-1.jpg is 204,800 bytes, photo-8.jpg 307,200 bytes
  assets/minima-social-icons.svg, favicon.ico, up.txt (empty)

Pages are made of real-looking markup and English-ish words so they compress like HTML;
images are incompressible. Output depends only on the seed (Python stdlib `random`), and
every file gets the same fixed mtime so ETag/Last-Modified are stable across runs.
Only ASCII is written, so characters == bytes.
"""

import argparse
import os
import random
import sys

FIXED_MTIME = 1717200000  # 2024-06-01T00:00:00Z
KIB = 1024

WORDS = (
    "the of and to in is for that on with as it by this be are from at or an was we "
    "can not but all have more one will which has their if about into when so what "
    "server static site page file request response header cache latency throughput "
    "raspberry pi failover origin certificate handshake connection keepalive socket "
    "kernel memory buffer queue thread worker process build deploy release config "
    "network packet router dns record health check uptime backup mirror primary "
    "secondary image photo garden weekend travel recipe coffee bread notes reading "
    "markdown jekyll theme layout template post draft archive category tag feed "
    "simple small quiet reliable careful measure compare profile benchmark result "
    "number table chart graph week month year morning evening today yesterday"
).split()

TAG_WORDS = (
    "linux networking raspberry-pi rust nginx tls dns hosting backup photography "
    "travel cooking baking coffee books reading writing jekyll markdown css javascript "
    "performance benchmarks security privacy homelab hardware electronics soldering "
    "gardening cycling hiking running music guitar piano film games chess math "
    "statistics python shell git vim emacs debian systemd docker kubernetes "
    "monitoring logging caching http2 ipv6 wifi power solar weather astronomy maps "
    "history notes"
).split()


def sentence(rng, lo=6, hi=18):
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".....?!")


def paragraph(rng):
    body = " ".join(sentence(rng) for _ in range(rng.randint(2, 6)))
    # Sprinkle inline markup like a Markdown renderer would.
    roll = rng.random()
    if roll < 0.25:
        w = rng.choice(WORDS)
        body = body.replace(" " + w + " ", " <em>" + w + "</em> ", 1)
    elif roll < 0.45:
        w = rng.choice(WORDS)
        body = body.replace(
            " " + w + " ", ' <a href="/tags/' + rng.choice(TAG_WORDS) + '/">' + w + "</a> ", 1
        )
    elif roll < 0.55:
        w = rng.choice(WORDS)
        body = body.replace(" " + w + " ", " <code>" + w + "</code> ", 1)
    return "<p>" + body + "</p>\n"


def block(rng):
    """One chunk of article content: mostly paragraphs, sometimes a heading, list or code."""
    roll = rng.random()
    if roll < 0.70:
        return paragraph(rng)
    if roll < 0.80:
        title = sentence(rng, 2, 6).rstrip(".?!")
        slug = "-".join(title.lower().split())
        return '<h2 id="' + slug + '">' + title + "</h2>\n"
    if roll < 0.90:
        items = "".join("  <li>" + sentence(rng, 3, 10) + "</li>\n" for _ in range(rng.randint(3, 7)))
        return "<ul>\n" + items + "</ul>\n"
    lines = []
    for _ in range(rng.randint(3, 10)):
        lines.append(
            "  "
            + rng.choice(["let", "const", "fn", "if", "for", "return"])
            + " "
            + rng.choice(WORDS)
            + "_"
            + rng.choice(WORDS)
            + " = "
            + str(rng.randint(0, 9999))
            + ";"
        )
    return '<pre class="highlight"><code>' + "\n".join(lines) + "</code></pre>\n"


def head(title, description):
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '  <meta charset="utf-8">\n'
        '  <meta http-equiv="X-UA-Compatible" content="IE=edge">\n'
        '  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "  <title>" + title + " | Notes from a small server</title>\n"
        '  <meta name="description" content="' + description + '">\n'
        '  <meta name="generator" content="Jekyll v4.3.3">\n'
        '  <meta property="og:title" content="' + title + '">\n'
        '  <meta property="og:locale" content="en_US">\n'
        '  <link rel="canonical" href="https://example.org/">\n'
        '  <link rel="stylesheet" href="/assets/css/main.css">\n'
        '  <link rel="stylesheet" href="/assets/css/syntax.css">\n'
        '  <link rel="alternate" type="application/atom+xml" title="Notes" href="/feed.xml">\n'
        '  <script src="/assets/js/main.js" defer></script>\n'
        "</head>\n"
    )


def nav():
    return (
        '<body>\n<header class="site-header" role="banner">\n'
        '  <div class="wrapper">\n'
        '    <a class="site-title" rel="author" href="/">Notes from a small server</a>\n'
        '    <nav class="site-nav">\n'
        '      <a class="page-link" href="/about/">About</a>\n'
        '      <a class="page-link" href="/archive/">Archive</a>\n'
        '      <a class="page-link" href="/feed.xml">Feed</a>\n'
        "    </nav>\n  </div>\n</header>\n"
        '<main class="page-content" aria-label="Content">\n<div class="wrapper">\n'
    )


FOOTER = (
    "</div>\n</main>\n"
    '<footer class="site-footer h-card">\n  <div class="wrapper">\n'
    '    <p class="footer-note">Served from a Raspberry Pi when the main host is down.</p>\n'
    "  </div>\n</footer>\n</body>\n</html>\n"
)


def fit(prefix, suffix, size, rng):
    """prefix + generated blocks + suffix, exactly `size` bytes."""
    room = size - len(prefix) - len(suffix)
    if room < 0:
        raise ValueError("page template larger than %d bytes" % size)
    parts = []
    used = 0
    while True:
        b = block(rng)
        if used + len(b) > room:
            break
        parts.append(b)
        used += len(b)
    left = room - used
    if left >= len("<p></p>\n") + 1:
        text = ""
        while len(text) < left:
            text += sentence(rng) + " "
        inner = left - len("<p></p>\n")
        parts.append("<p>" + text[:inner] + "</p>\n")
    else:
        parts.append("\n" * left)
    out = prefix + "".join(parts) + suffix
    assert len(out) == size, (len(out), size)
    return out


def post_list(posts, rng, n):
    items = []
    for p in rng.sample(posts, min(n, len(posts))):
        items.append(
            '  <li><span class="post-meta">'
            + p["date"]
            + '</span>\n    <h3><a class="post-link" href="'
            + p["url"]
            + '">'
            + p["title"]
            + "</a></h3>\n    <p>"
            + p["excerpt"]
            + "</p>\n  </li>\n"
        )
    return '<ul class="post-list">\n' + "".join(items) + "</ul>\n"


def css(size, rng):
    props = [
        "margin", "padding", "color", "background-color", "font-size", "line-height",
        "border-bottom", "display", "max-width", "font-weight", "text-decoration",
    ]
    values = ["0", "1rem", "#111", "#fdfdfd", "15px", "1.5", "1px solid #e8e8e8", "block",
              "calc(800px - (30px * 2))", "400", "none", "#2a7ae2", "30px"]
    out = "/* main.css - generated */\n"
    i = 0
    while True:
        sel = rng.choice([".site-", ".post-", ".page-", ".footer-", ".highlight .", "h", ".wrapper ."])
        sel += rng.choice(WORDS) + ("-%d" % i)
        rule = sel + " {\n" + "".join(
            "  " + rng.choice(props) + ": " + rng.choice(values) + ";\n" for _ in range(rng.randint(2, 6))
        ) + "}\n"
        if len(out) + len(rule) > size:
            break
        out += rule
        i += 1
    return out + " " * (size - len(out) - 1) + "\n"


def js(size, rng):
    out = "/* main.js - generated */\n(function () {\n  'use strict';\n"
    tail = "})();\n"
    i = 0
    while True:
        fn = (
            "  function "
            + rng.choice(WORDS)
            + "_"
            + rng.choice(WORDS)
            + str(i)
            + "(el, opts) {\n"
            + "    if (!el) { return null; }\n"
            + "    var "
            + rng.choice(WORDS)
            + " = el.querySelectorAll('."
            + rng.choice(WORDS)
            + "');\n"
            + "    for (var i = 0; i < "
            + str(rng.randint(1, 64))
            + "; i++) { opts.count = (opts.count || 0) + i; }\n"
            + "    return el.getAttribute('data-"
            + rng.choice(WORDS)
            + "') || '"
            + sentence(rng, 2, 6).replace("'", "")
            + "';\n  }\n"
        )
        if len(out) + len(fn) + len(tail) > size:
            break
        out += fn
        i += 1
    out += " " * (size - len(out) - len(tail) - 1) + "\n"
    return out + tail


def jpeg(size, rng):
    header = bytes.fromhex("ffd8ffe000104a46494600010101004800480000")  # SOI + JFIF APP0
    trailer = bytes.fromhex("ffd9")  # EOI
    return header + rng.randbytes(size - len(header) - len(trailer)) + trailer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = os.path.abspath(args.out_dir)
    files = {}  # relative path -> bytes

    def put(rel, data):
        assert rel not in files, rel
        files[rel] = data.encode("ascii") if isinstance(data, str) else data

    # Posts: 100, dated 2019-2024, newest first.
    posts = []
    used_slugs = set()
    for i in range(100):
        year = 2019 + i * 6 // 100
        month = rng.randint(1, 12)
        day = rng.randint(1, 28)
        while True:
            title = sentence(rng, 3, 7).rstrip(".?!")
            slug = "-".join(title.lower().split())[:60].strip("-")
            if slug not in used_slugs:
                used_slugs.add(slug)
                break
        date = "%04d-%02d-%02d" % (year, month, day)
        url = "/%04d/%02d/%02d/%s/" % (year, month, day, slug)
        tags = rng.sample(TAG_WORDS, rng.randint(1, 4))
        posts.append({"title": title, "date": date, "url": url, "tags": tags,
                      "excerpt": sentence(rng, 10, 24)})
    posts.sort(key=lambda p: p["date"], reverse=True)

    for p in posts:
        prefix = (
            head(p["title"], p["excerpt"])
            + nav()
            + '<article class="post h-entry">\n<header class="post-header">\n'
            + '  <h1 class="post-title p-name">' + p["title"] + "</h1>\n"
            + '  <p class="post-meta"><time class="dt-published" datetime="' + p["date"]
            + 'T08:00:00+00:00">' + p["date"] + "</time> &middot; "
            + ", ".join('<a href="/tags/%s/">%s</a>' % (t, t) for t in p["tags"])
            + "</p>\n</header>\n"
            + '<div class="post-content e-content">\n'
        )
        suffix = '</div>\n<a class="u-url" href="' + p["url"] + '" hidden></a>\n</article>\n' + FOOTER
        size = rng.randint(10 * KIB, 40 * KIB)
        put(p["url"].strip("/") + "/index.html", fit(prefix, suffix, size, rng))

    # Front page: exactly 15 KiB.
    prefix = head("Home", "Notes, measurements and photos.") + nav() + '<div class="home">\n' \
        + '<h2 class="post-list-heading">Posts</h2>\n' + post_list(posts[:10], rng, 10)
    suffix = '<p class="rss-subscribe">subscribe <a href="/feed.xml">via RSS</a></p>\n' \
        + '<div class="pagination"><a href="/page2/">Older</a></div>\n</div>\n' + FOOTER
    put("index.html", fit(prefix, suffix, 15 * KIB, rng))

    # Tag pages: 60.
    for tag in TAG_WORDS[:60]:
        tagged = [p for p in posts if tag in p["tags"]] or posts[:3]
        prefix = head("Tag: " + tag, "Posts tagged " + tag) + nav() \
            + '<h1 class="page-heading">Posts tagged &ldquo;' + tag + "&rdquo;</h1>\n" \
            + post_list(tagged, rng, len(tagged))
        size = max(len(prefix) + len(FOOTER) + 512, rng.randint(6 * KIB, 16 * KIB))
        put("tags/" + tag + "/index.html", fit(prefix, FOOTER, size, rng))

    # Pagination: page2 .. page20 (19 pages).
    for n in range(2, 21):
        chunk = posts[(n - 1) * 5:(n - 1) * 5 + 5] or posts[:5]
        prefix = head("Page %d" % n, "Older posts, page %d" % n) + nav() \
            + post_list(chunk, rng, len(chunk))
        nxt = '<a href="/page%d/">Older</a>' % (n + 1) if n < 20 else ""
        prv = '<a href="/">Newer</a>' if n == 2 else '<a href="/page%d/">Newer</a>' % (n - 1)
        suffix = '<div class="pagination">' + prv + " " + nxt + "</div>\n" + FOOTER
        put("page%d/index.html" % n, fit(prefix, suffix, rng.randint(12 * KIB, 18 * KIB), rng))

    # Other pages.
    put("about/index.html", fit(head("About", "About this site") + nav()
                                + '<h1 class="page-heading">About</h1>\n', FOOTER, 6 * KIB, rng))
    archive = "".join('<li><a href="%s">%s</a> <span>%s</span></li>\n' % (p["url"], p["title"], p["date"])
                      for p in posts)
    put("archive/index.html", head("Archive", "All posts") + nav() + "<h1>Archive</h1>\n<ul>\n"
        + archive + "</ul>\n" + FOOTER)
    put("404.html", fit(head("Page not found", "404") + nav()
                        + '<div class="container"><h1>404</h1>\n'
                        + "<p><strong>Page not found :(</strong></p>\n", "</div>\n" + FOOTER,
                        3 * KIB, rng))
    feed = '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n' \
        + "<title>Notes from a small server</title>\n" + "".join(
            "<entry><title>%s</title><link href=\"https://example.org%s\"/><updated>%sT08:00:00+00:00</updated>"
            "<summary>%s</summary></entry>\n" % (p["title"], p["url"], p["date"], p["excerpt"])
            for p in posts[:20]) + "</feed>\n"
    put("feed.xml", feed)
    urls = ["/"] + [p["url"] for p in posts] + ["/tags/%s/" % t for t in TAG_WORDS[:60]]
    put("sitemap.xml", '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        + "".join("<url><loc>https://example.org%s</loc></url>\n" % u for u in urls) + "</urlset>\n")
    put("robots.txt", "User-agent: *\nAllow: /\nSitemap: https://example.org/sitemap.xml\n")
    put("up.txt", b"")

    # Assets.
    put("assets/css/main.css", css(30 * KIB, rng))
    put("assets/css/syntax.css", css(6 * KIB, rng))
    put("assets/js/main.js", js(80 * KIB, rng))
    sizes = {1: 200 * KIB, 8: 300 * KIB}
    for n in range(1, 9):
        put("assets/img/photo-%d.jpg" % n, jpeg(sizes.get(n) or rng.randint(50 * KIB, 300 * KIB), rng))
    put("assets/minima-social-icons.svg", '<svg xmlns="http://www.w3.org/2000/svg">\n' + "".join(
        '<symbol id="%s" viewBox="0 0 16 16"><path d="M%d %dc%d %d %d %d"/></symbol>\n'
        % (t, rng.randint(0, 16), rng.randint(0, 16), rng.randint(0, 9), rng.randint(0, 9),
           rng.randint(0, 9), rng.randint(0, 9)) for t in TAG_WORDS[:12]) + "</svg>\n")
    put("favicon.ico", b"\x00\x00\x01\x00\x01\x00\x10\x10" + rng.randbytes(1142))

    assert len(files) == 200, len(files)
    assert len(files["index.html"]) == 15360
    assert len(files["assets/img/photo-1.jpg"]) == 204800

    total = 0
    for rel, data in sorted(files.items()):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        total += len(data)
    print("gen-site: %d files, %d bytes in %s (seed %d)" % (len(files), total, root, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
