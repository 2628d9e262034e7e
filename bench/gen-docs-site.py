#!/usr/bin/env python3
"""Generate a deterministic documentation site (MkDocs Material-shaped) for the sync benchmark.

Usage: bench/gen-docs-site.py OUT_DIR [--seed N] [--mutated]

Writes exactly 1,000 files (66.1 MB with the default seed) into OUT_DIR and prints their count,
total size and the largest files with their gzip ratio. `bench/seed-bucket.py --site docs`
uploads the same files (it loads this module), so this command shows what the benchmark syncs.
With seed 1:

  search/search_index.json        3.6 MB  the search index: a JSON entry per page section
  reference/api/index.html        2.6 MB  the whole API on one page
  assets/javascripts/bundle.js    1.6 MB  minified JavaScript
  changelog/index.html            1.4 MB  every release's notes
  reference/cli/index.html        1.1 MB  every command and option
  sitemap.xml                     1.0 MB  every page with eight language alternates
  sitemap.xml.gz                   39 KB  its gzip, as MkDocs writes it
  <section>/<page>/index.html     ~900 pages of 2-60 KiB, median 48 KB (header, the section's
                                  navigation, the table of contents, the text), plus
                                  index.html and 404.html
  assets/stylesheets/*.css, assets/javascripts/**/*.js   36 files of 2-60 KB: theme CSS,
                                  search worker, lunr language files
  assets/images/**, blog/images/  50 PNG/JPEG/WebP images of 50-500 KB: random bytes behind
                                  the format's magic (incompressible), and a favicon
  assets/images/**/*.svg          5 small SVG icons

Text is HTML built from a Zipf-weighted vocabulary (a few hundred English and documentation
words plus a few thousand invented ones) with real-looking markup: paragraphs with inline code
and links, lists, admonitions, tables and syntax-highlighted code blocks. It compresses like
real documentation: with gzip -6 the pages about 3.5x, the large files 3.4-3.8x, the small
JavaScript files 2.8x, the sitemap (repetitive by nature) 26x. Everything depends only on the
seed (Python's random.Random), so every run and machine gets the same bytes.

--mutated writes the site after `mutate()`, the change the benchmark's delta phase syncs: 1 % of
the files rewritten (half of them same-size: a one-letter typo fix, one of them in the 2.6 MB API
page), including the rebuilt search index and sitemap (pages deleted, dates moved) and a new
changelog release, and 1 % of the pages deleted.
"""

import argparse
import datetime
import gzip
import json
import os
import random
import sys
import zlib

KIB = 1024
TOTAL_FILES = 1000
IMAGES = 50
HOST = "https://docs.example.org"
LANGS = ["en", "de", "fr", "es", "it", "ja", "pt", "zh"]
BUILD_DATE, REBUILD_DATE = "2025-11-24", "2025-11-25"

# Frequent words first: the vocabulary is Zipf-weighted by position.
COMMON = (
    "the of and to a in is for that you it on with as this be are can by or from if not an "
    "when your which will use all at have each one more only set by default we also then must "
    "new other any value file the this see should may these so into its but there how below "
    "above same first same example following returns used using run option options command "
    "configuration config server client request response site page build sync bucket object "
    "key keys path directory files list name type string number true false null error errors "
    "log logs level time timeout seconds minutes retry retries cache header headers status code "
    "version release plugin plugins theme template section sections index search query result "
    "results field fields method methods function functions class argument arguments parameter "
    "parameters return instance module package install installed update upgrade remove delete "
    "create read write open close start stop restart enable disable check test tests local "
    "remote host port address network connection certificate tls http https url user users group "
    "permission access token secret credentials environment variable variables support supported "
    "note warning important instead without within between before after while until because "
    "however otherwise whether every both either most least several many few some such than"
).split()

SYLLABLES = (
    "ka ro mi te su na lo vi pe da ri ko ba ne tu sa mo li ge fa ha ju ze wo qui bra stel pon "
    "dar mex lin tor gal fen rup sol ent ion ver ack ist ul ang orm ex pre con sub"
).split()

JS_NAMES = (
    "querySelector querySelectorAll addEventListener removeEventListener classList contains "
    "toggle getAttribute setAttribute dataset textContent innerHTML appendChild replaceWith "
    "createElement subscribe pipe map filter switchMap distinctUntilChanged debounceTime "
    "startWith takeUntil fromEvent combineLatest observeOn animationFrameScheduler next "
    "complete length push slice indexOf includes startsWith replace split join trim "
    "toLowerCase localStorage sessionStorage getItem setItem location href pathname hash "
    "scrollTo offsetTop offsetHeight clientHeight getBoundingClientRect matchMedia matches "
    "postMessage onmessage terminate resolve reject then catch finally prototype call apply "
    "bind hasOwnProperty keys values entries assign freeze defineProperty Symbol iterator"
).split()

CSS_PROPS = (
    "display position top left right bottom width height max-width min-height margin "
    "margin-top margin-bottom padding padding-left padding-right color background-color "
    "border border-radius border-bottom box-shadow font-size font-weight line-height "
    "letter-spacing text-align overflow overflow-x z-index opacity transition transform cursor "
    "flex flex-direction flex-grow align-items justify-content gap outline content "
    "white-space word-break visibility pointer-events"
).split()

CSS_VALUES = (
    "0 auto none block inline-block flex grid relative absolute sticky hidden 100% 50% .2rem "
    ".4rem .6rem .8rem 1rem 1.2rem 1.6rem 2.4rem 0.125em 1px 2px var(--md-primary-fg-color) "
    "var(--md-default-fg-color--light) var(--md-accent-fg-color) var(--md-code-bg-color) "
    "transparent currentcolor inherit center space-between pointer nowrap 700 400 "
    "250ms translateY(-50%) rotate(45deg) 1.5 1.3 #fff #000"
).split()

TYPES = ["str", "int", "bool", "list[str]", "float", "Path"]

LANG_CODES = (
    "ar da de du es fi fr hi hu hy it ja jp kn ko multi nl no pt ro ru sa sv ta te th tr vi zh"
).split()


class DocsSite:
    """The site's files: key -> body, all in memory. Deterministic in the seed."""

    def __init__(self, seed=1):
        self.seed = seed
        rng = self.rng = random.Random(seed)
        self._vocabulary(rng)
        self._corpus(rng)
        self.bodies = {}
        self.pages = {}  # page key -> (title, [(anchor, heading, text)]) for the index and sitemap
        self._assets(rng)
        self._images(rng)
        self._big_pages(rng)
        n_pages = TOTAL_FILES - len(self.bodies) - 6  # the index, sitemap (2), index.html, 404.html, bundle
        self._ordinary_pages(rng, n_pages)
        self.bodies["index.html"] = self._page(rng, "index.html", "Pi Docs", self._content(rng, 24 * KIB))
        self.bodies["404.html"] = self._page(rng, "404.html", "Page not found",
                                             '<h1>404 - Not found</h1>\n', index=False)
        self.bodies["assets/javascripts/bundle.js"] = self._js(rng, 1536 * KIB, "bundle")
        self._rebuild_indexes(BUILD_DATE)
        assert len(self.bodies) == TOTAL_FILES, len(self.bodies)

    # ------------------------------------------------------------ words and blocks

    def _vocabulary(self, rng):
        invented = set()
        while len(invented) < 3000:
            w = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 2, 3, 3, 4))))
            if w not in COMMON:
                invented.add(w)
        common = list(dict.fromkeys(COMMON))
        tail = common[60:] + sorted(invented)
        rng.shuffle(tail)  # the 60 most common words stay the most frequent
        self.words = common[:60] + tail
        acc, cum = 0.0, []
        for r in range(len(self.words)):
            acc += 1.0 / (r + 2.5)
            cum.append(acc)
        self.cum = cum

    def w(self, rng, k=1):
        return rng.choices(self.words, cum_weights=self.cum, k=k)

    def ident(self, rng):
        return "_".join(rng.choice(self.words[60:900]) for _ in range(rng.randint(1, 3)))

    def cls(self, rng):
        return "".join(rng.choice(self.words[60:900]).capitalize() for _ in range(rng.randint(1, 3)))

    def slug(self, rng, lo=1, hi=4):
        return "-".join(rng.choice(self.words[60:1500]) for _ in range(rng.randint(lo, hi)))

    def title(self, rng, lo=2, hi=5):
        t = " ".join(self.w(rng, rng.randint(lo, hi)))
        return t[:1].upper() + t[1:]

    def sentence(self, rng):
        out = []
        for word in self.w(rng, rng.randint(6, 22)):
            r = rng.random()
            if r < 0.04:
                out.append(f"<code>{self.ident(rng)}</code>")
            elif r < 0.055:
                out.append(f'<a href="../{self.slug(rng)}/">{word} {self.w(rng)[0]}</a>')
            elif r < 0.062:
                out.append(f"<strong>{word}</strong>")
            else:
                out.append(word)
        s = " ".join(out)
        return s[:1].upper() + s[1:] + rng.choice("......:?")

    def para(self, rng, lo=2, hi=6):
        return "<p>" + " ".join(self.sentence(rng) for _ in range(rng.randint(lo, hi))) + "</p>"

    def code_block(self, rng, lines=None):
        out = []
        for _ in range(lines or rng.randint(3, 14)):
            r = rng.random()
            ind = "    " * rng.randint(0, 2)
            if r < 0.45:
                line = (f'{ind}<span class="n">{self.ident(rng)}</span> <span class="o">=</span> '
                        f'<span class="n">{self.ident(rng)}</span><span class="o">.</span>'
                        f'<span class="n">{self.ident(rng)}</span><span class="p">(</span>'
                        f'<span class="s2">&quot;{self.slug(rng)}&quot;</span><span class="p">)</span>')
            elif r < 0.7:
                line = (f'{ind}<span class="k">if</span> <span class="n">{self.ident(rng)}</span> '
                        f'<span class="ow">is</span> <span class="kc">None</span><span class="p">:</span>')
            elif r < 0.85:
                line = f'{ind}<span class="c1"># {" ".join(self.w(rng, rng.randint(3, 9)))}</span>'
            else:
                line = (f'{ind}<span class="k">return</span> <span class="n">{self.ident(rng)}</span>'
                        f'<span class="p">[</span><span class="mi">{rng.randint(0, 99)}</span>'
                        f'<span class="p">]</span>')
            out.append(line)
        return ('<div class="language-python highlight"><pre><span></span><code>'
                + "\n".join(out) + "\n</code></pre></div>")

    def block(self, rng):
        r = rng.random()
        if r < 0.55:
            return self.para(rng)
        if r < 0.67:
            return "<ul>\n" + "\n".join(f"<li>{self.sentence(rng)}</li>" for _ in range(rng.randint(3, 7))) + "\n</ul>"
        if r < 0.82:
            return self.code_block(rng)
        if r < 0.88:
            kind = rng.choice(["note", "tip", "warning", "info", "example"])
            return (f'<div class="admonition {kind}">\n<p class="admonition-title">{kind.capitalize()}</p>\n'
                    + self.para(rng, 1, 3) + "\n</div>")
        rows = "\n".join(f"<tr>\n<td><code>{self.ident(rng)}</code></td>\n<td><code>{rng.choice(TYPES)}</code></td>\n"
                         f"<td>{self.sentence(rng)}</td>\n</tr>" for _ in range(rng.randint(3, 8)))
        return ("<table>\n<thead>\n<tr>\n<th>Name</th>\n<th>Type</th>\n<th>Description</th>\n</tr>\n</thead>\n"
                f"<tbody>\n{rows}\n</tbody>\n</table>")

    def _corpus(self, rng):
        """About 7 MB of blocks; pages take runs of them, so text is not generated per page."""
        self.blocks, size = [], 0
        while size < 7 * 1024 * KIB:
            b = self.block(rng)
            self.blocks.append(b)
            size += len(b) + 1

    def _content(self, rng, size, h1=None):
        """Headings and a run of corpus blocks, about `size` bytes; returns (html, sections)."""
        parts, sections, n = [], [], 0
        i = rng.randrange(len(self.blocks))
        anchor, heading, text = "", h1 or "", []
        if h1:
            parts.append(f'<h1 id="{self.slug(rng, 1, 2)}">{h1}</h1>')
        since = 99
        used = set()
        while n < size:
            if since >= rng.randint(2, 6):
                sections.append((anchor, heading, text))
                heading = self.title(rng)
                anchor = heading.lower().replace(" ", "-")
                while anchor in used:
                    anchor += "_1"
                used.add(anchor)
                text = []
                h = (f'<h2 id="{anchor}">{heading}<a class="headerlink" href="#{anchor}" '
                     f'title="Permanent link">&para;</a></h2>')
                parts.append(h)
                n += len(h)
                since = 0
            b = self.blocks[i % len(self.blocks)]
            i += 1
            parts.append(b)
            text.append(b)
            n += len(b) + 1
            since += 1
        sections.append((anchor, heading, text))
        return "\n".join(parts) + "\n", [s for s in sections if s[2]]

    # ------------------------------------------------------------ pages

    def _page(self, rng, key, title, content, index=True, nav=()):
        """Material-shaped page around `content` (html, or (html, sections))."""
        if isinstance(content, tuple):
            html, sections = content
        else:
            html, sections = content, []
        if index:
            self.pages[key] = (title, [(a, h, "".join(t)) for a, h, t in sections])
        depth = key.count("/")
        base = "../" * depth or "./"
        nav_html = "\n".join(
            f'<li class="md-nav__item{" md-nav__item--active" if k == key else ""}">'
            f'<a href="{base}{k[:-len("index.html")]}" class="md-nav__link">{t}</a></li>' for k, t in nav)
        toc = "\n".join(f'<li class="md-nav__item"><a href="#{a}" class="md-nav__link">{h}</a></li>'
                        for a, h, _ in sections if a)
        return (
            '<!doctype html>\n<html lang="en" class="no-js">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width,initial-scale=1">\n'
            f'<link rel="canonical" href="{HOST}/en/latest/{key[:-len("index.html")]}">\n'
            f'<link rel="icon" href="{base}assets/images/favicon.png">\n'
            f'<meta name="generator" content="mkdocs-1.6.1, mkdocs-material-9.5.44">\n<title>{title} - Pi Docs</title>\n'
            f'<link rel="stylesheet" href="{base}assets/stylesheets/main.css">\n'
            f'<link rel="stylesheet" href="{base}assets/stylesheets/palette.css">\n</head>\n'
            '<body dir="ltr" data-md-color-scheme="default" data-md-color-primary="indigo">\n'
            '<header class="md-header" data-md-component="header"><nav class="md-header__inner md-grid">'
            f'<a href="{base}" title="Pi Docs" class="md-header__button md-logo"><img src="{base}assets/images/logo.svg" alt="logo"></a>'
            f'<div class="md-header__title"><span class="md-ellipsis">{title}</span></div>'
            '<div class="md-search" data-md-component="search" role="dialog"><input type="text" class="md-search__input" '
            'name="query" placeholder="Search" autocapitalize="off" autocorrect="off" spellcheck="false"></div>'
            '</nav></header>\n<div class="md-container" data-md-component="container"><main class="md-main">'
            '<div class="md-main__inner md-grid">\n<div class="md-sidebar md-sidebar--primary"><nav class="md-nav md-nav--primary">'
            f'<ul class="md-nav__list">\n{nav_html}\n</ul></nav></div>\n'
            '<div class="md-sidebar md-sidebar--secondary"><nav class="md-nav md-nav--secondary">'
            f'<label class="md-nav__title">Table of contents</label><ul class="md-nav__list">\n{toc}\n</ul></nav></div>\n'
            f'<div class="md-content" data-md-component="content"><article class="md-content__inner md-typeset">\n{html}'
            '</article></div>\n</div></main>\n<footer class="md-footer"><div class="md-copyright">Copyright &copy; 2025 '
            'The Pi Docs authors. Made with <a href="https://squidfunk.github.io/mkdocs-material/">Material for MkDocs</a>'
            '</div></footer></div>\n'
            '<script id="__config" type="application/json">{"base": "' + base.rstrip("/") + '", "features": '
            '["navigation.sections", "search.highlight", "content.code.copy"], "search": '
            f'"{base}assets/javascripts/workers/search.js"}}</script>\n'
            f'<script src="{base}assets/javascripts/bundle.js"></script>\n</body>\n</html>\n'
        ).encode()

    def _ordinary_pages(self, rng, n):
        """n pages of 2-60 KB in sections, each listing its siblings in the navigation."""
        shape = [("getting-started", 0.02), ("user-guide", 0.14), ("how-to", 0.10), ("tutorials", 0.05),
                 ("reference/api", 0.40), ("reference/cli", 0.07), ("reference/config", 0.07),
                 ("blog", 0.10), ("community", 0.05)]
        keys, dirs = [], {}
        for i in range(n):
            r, acc = rng.random(), 0.0
            for section, share in shape:
                acc += share
                if r < acc:
                    break
            if section == "reference/api":
                d = f"{section}/{rng.choice(self.words[60:80])}"
            elif section == "blog":
                d = f"blog/{rng.randint(2019, 2025)}/{rng.randint(1, 12):02d}"
            else:
                d = section
            while True:
                key = f"{d}/{self.slug(rng, 1, 3)}/index.html"
                if key not in self.bodies and key not in dirs:
                    break
            dirs[key] = d
            keys.append(key)
        titles = {k: self.title(rng) for k in keys}
        by_dir = {}
        for k in sorted(keys):
            by_dir.setdefault(dirs[k], []).append(k)
        for key in keys:
            size = int(2 * KIB + 58 * KIB * rng.random() ** 0.45)
            siblings = by_dir[dirs[key]][:40]
            nav = [(k, titles[k]) for k in siblings]
            chrome = 3 * KIB + sum(90 + len(t) for _, t in nav)
            body = self._page(rng, key, titles[key], self._content(rng, max(300, size - chrome), titles[key]), nav=nav)
            while len(body) > 60 * KIB:  # overshot by a block or the navigation: trim the text
                size -= 4 * KIB
                body = self._page(rng, key, titles[key], self._content(rng, max(300, size - chrome), titles[key]), nav=nav)
            self.bodies[key] = body

    def _big_pages(self, rng):
        api = []
        for _ in range(1600):
            name = f"{self.ident(rng)}.{self.cls(rng)}.{self.ident(rng)}"
            api.append(f'<h3 id="{name}" class="doc doc-heading"><code>{name}</code>'
                       f'<a class="headerlink" href="#{name}" title="Permanent link">&para;</a></h3>')
            args = ", ".join(f"{self.ident(rng)}: {rng.choice(['str', 'int', 'bool', 'Path'])} = {rng.randint(0, 99)}"
                             for _ in range(rng.randint(1, 5)))
            api.append(f'<div class="doc doc-contents"><div class="highlight"><pre><code>def {name.rsplit(".", 1)[1]}'
                       f'({args})</code></pre></div>')
            api.append(self.para(rng, 2, 7))
            api.append(self.block(rng) + "</div>")
        self.bodies["reference/api/index.html"] = self._page(
            rng, "reference/api/index.html", "API reference",
            ("<h1>API reference</h1>\n" + "\n".join(api) + "\n",
             [("", "API reference", "".join(api[:40]))]))
        log = []
        for v in range(420):
            major, minor, patch = 9 - v // 120, 5 - (v // 30) % 5, 29 - v % 30
            day = datetime.date(2025, 11, 20) - datetime.timedelta(days=4 * v)
            log.append(f'<h2 id="{major}.{minor}.{patch}">{major}.{minor}.{patch} <small>{day}</small></h2>')
            log.append(self._changelog_items(rng))
        self.bodies["changelog/index.html"] = self._page(
            rng, "changelog/index.html", "Changelog",
            ("<h1>Changelog</h1>\n" + "\n".join(log) + "\n", [("", "Changelog", "".join(log[:20]))]))
        cli = []
        for _ in range(420):
            cmd = f"pidocs {self.slug(rng, 1, 2)}"
            cli.append(f'<h2 id="{cmd.replace(" ", "-")}"><code>{cmd}</code></h2>')
            cli.append(self.para(rng, 1, 4))
            cli.append(self.code_block(rng, 3))
            for _ in range(rng.randint(3, 7)):
                cli.append(f"<h3><code>--{self.slug(rng, 1, 3)}</code></h3>\n{self.para(rng, 1, 4)}")
        self.bodies["reference/cli/index.html"] = self._page(
            rng, "reference/cli/index.html", "Command line",
            ("<h1>Command line</h1>\n" + "\n".join(cli) + "\n", [("", "Command line", "".join(cli[:20]))]))

    def _changelog_items(self, rng):
        return "<ul>\n" + "\n".join(
            f"<li>{rng.choice(['Fixed', 'Added', 'Improved', 'Removed', 'Updated'])} "
            f"{self.sentence(rng)[:1].lower()}{self.sentence(rng)[1:]} "
            f'(<a href="https://github.com/example/pi-docs/issues/{rng.randint(100, 9999)}">#{rng.randint(100, 9999)}</a>)</li>'
            for _ in range(rng.randint(8, 24))) + "\n</ul>"

    # ------------------------------------------------------------ assets

    def _js(self, rng, size, name):
        parts = [f'"use strict";/* {name} */(()=>{{']
        n = len(parts[0])
        while n < size:
            a, b, c = (self._jsid(rng) for _ in range(3))
            r = rng.random()
            p1, p2 = rng.choice(JS_NAMES), rng.choice(JS_NAMES)
            if r < 0.3:
                s = f"function {a}({b},{c}){{return {b}.{p1}({c})||{b}.{p2}}}"
            elif r < 0.5:
                s = f'{a}=(({b},{c})=>{b}.{p1}(`.md-{rng.choice(self.words[60:260])}`).{p2}({c}))'
            elif r < 0.65:
                s = (f"for(let {b}=0;{b}<{a}.length;{b}++){{const {c}={a}[{b}];"
                     f"{c}.{p1}&&{c}.{p2}({b})}}")
            elif r < 0.8:
                s = f'{a}={{{self.ident(rng)}:"{" ".join(self.w(rng, rng.randint(1, 6)))}",{b}:{rng.randint(0, 999)},{c}:!0}}'
            elif r < 0.9:
                s = f"if(typeof {a}==\"undefined\")throw new TypeError(\"{self.title(rng)}\");{b}.{p1}={c}"
            else:
                s = f"class {self.cls(rng)}{{constructor({b}){{this.{p1}={b},this.{p2}=[]}}{c}(){{return this.{p1}}}}}"
            parts.append(s + (";\n" if rng.random() < 0.02 else ";"))
            n += len(parts[-1])
        parts.append("})();\n")
        return "".join(parts).encode()

    def _jsid(self, rng):
        """A minifier's name: a few short ones are most of them."""
        if not hasattr(self, "_jsids"):
            letters = "etnroisaclupfmdhbgvyxwkjqzETNROISACLUPFMDHBGVYXWKJQZ"
            self._jsids = list(letters) + [a + b for a in letters for b in letters + "0123456789$_"]
            self._jscum, acc = [], 0.0
            for r in range(len(self._jsids)):
                acc += 1.0 / (r + 1) ** 1.4
                self._jscum.append(acc)
        return rng.choices(self._jsids, cum_weights=self._jscum)[0]

    def _css(self, rng, size):
        out, n = [], 0
        while n < size:
            sel = ",".join(f".md-{self.slug(rng, 1, 2)}{rng.choice(['', '__link', '__item', '--active', ':hover', ' > li'])}"
                           for _ in range(rng.randint(1, 3)))
            decl = ";".join(f"{rng.choice(CSS_PROPS)}:{rng.choice(CSS_VALUES)}" for _ in range(rng.randint(1, 6)))
            rule = f"{sel}{{{decl}}}"
            if rng.random() < 0.08:
                rule = f"@media screen and (min-width:{rng.choice([45, 60, 76.25, 100])}em){{{rule}}}"
            out.append(rule)
            n += len(rule)
        return ("/* Pi Docs theme */\n:root{--md-primary-fg-color:#4051b5}" + "".join(out) + "\n").encode()

    def _svg(self, rng, size):
        d = []
        n = 0
        while n < size:
            seg = f"{rng.choice('MLCQ')}{rng.randint(0, 240) / 10} {rng.randint(0, 240) / 10}"
            d.append(seg)
            n += len(seg) + 1
        return ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><path d="'
                + " ".join(d) + 'Z"/></svg>\n').encode()

    def _assets(self, rng):
        a = "assets/"
        self.bodies[a + "stylesheets/main.css"] = self._css(rng, 58 * KIB)
        self.bodies[a + "stylesheets/palette.css"] = self._css(rng, 12 * KIB)
        self.bodies[a + "stylesheets/extra.css"] = self._css(rng, 2 * KIB + 200)
        self.bodies[a + "javascripts/workers/search.js"] = self._js(rng, 40 * KIB, "search worker")
        for code in LANG_CODES:
            self.bodies[f"{a}javascripts/lunr/min/lunr.{code}.min.js"] = self._js(rng, rng.randint(2 * KIB, 25 * KIB), f"lunr.{code}")
        self.bodies[a + "javascripts/lunr/tinyseg.js"] = self._js(rng, 22 * KIB, "tinyseg")
        self.bodies[a + "javascripts/lunr/wordcut.js"] = self._js(rng, 45 * KIB, "wordcut")
        self.bodies[a + "javascripts/extra.js"] = self._js(rng, 3 * KIB, "extra")
        self.bodies[a + "images/logo.svg"] = self._svg(rng, 2 * KIB + 500)
        for i in range(4):
            self.bodies[f"{a}images/icons/{self.slug(rng, 1, 2)}.svg"] = self._svg(rng, rng.randint(2 * KIB, 6 * KIB))

    def _images(self, rng):
        self.bodies["assets/images/favicon.png"] = b"\x89PNG\r\n\x1a\n" + rng.randbytes(2 * KIB + 100)
        magic = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "webp": b"RIFF\x00\x00\x00\x00WEBPVP8 "}
        for i in range(IMAGES):
            ext = rng.choices(["png", "jpg", "webp"], weights=[50, 35, 15])[0]
            dirn = rng.choice(["assets/images/screenshots", "assets/images/diagrams", "blog/images"])
            key = f"{dirn}/{self.slug(rng, 1, 3)}-{i}.{ext}"
            size = rng.randint(50 * KIB, 500 * KIB)
            self.bodies[key] = magic[ext] + rng.randbytes(size - len(magic[ext]))

    # ------------------------------------------------------------ index and sitemap

    def _rebuild_indexes(self, date):
        docs = []
        # Text per page, fixed at the first build (a deleted page's entries leave the index).
        budget = self.__dict__.setdefault("_budget", 3_450_000 // max(1, len(self.pages)))
        for key in sorted(self.pages):
            title, sections = self.pages[key]
            loc = key[:-len("index.html")]
            used = 0
            for anchor, heading, text in sections:
                if used >= budget:
                    break
                text = text[:budget - used]
                docs.append({"location": loc + (f"#{anchor}" if anchor else ""), "title": heading or title, "text": text})
                used += len(text) + len(loc) + len(heading) + 40
        index = {"config": {"lang": ["en"], "separator": r"[\s\-,:!=\[\]()\"`/]+|\.(?!\d)|&[lg]t;|(?!\b)(?=[A-Z][a-z])",
                            "pipeline": ["stopWordFilter"]}, "docs": docs}
        self.bodies["search/search_index.json"] = json.dumps(index, separators=(",", ":")).encode()
        urls = []
        for key in sorted(self.pages):
            loc = key[:-len("index.html")]
            alts = "".join(f'\n    <xhtml:link rel="alternate" hreflang="{lang}" href="{HOST}/{lang}/latest/{loc}"/>'
                           for lang in LANGS)
            urls.append(f"  <url>\n    <loc>{HOST}/en/latest/{loc}</loc>\n    <lastmod>{date}</lastmod>\n"
                        f"    <changefreq>daily</changefreq>{alts}\n  </url>")
        sitemap = ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
                   'xmlns:xhtml="http://www.w3.org/1999/xhtml">\n' + "\n".join(urls) + "\n</urlset>\n").encode()
        self.bodies["sitemap.xml"] = sitemap
        self.bodies["sitemap.xml.gz"] = gzip.compress(sitemap, compresslevel=9, mtime=0)

    # ------------------------------------------------------------ the delta

    BIG_SAME = ["reference/api/index.html"]
    BIG_RESIZED = ["changelog/index.html", "search/search_index.json", "sitemap.xml", "sitemap.xml.gz"]

    def mutate(self):
        """A rebuild after an edit: returns (same_size, resized, deleted) key lists.

        1 % of the files are rewritten and 1 % of the pages deleted, like the small-object case,
        but the rewritten ones include the large files a real rebuild changes: a typo fixed in
        the API page (same size), a release added to the changelog, and the search index and
        sitemap rebuilt without the deleted pages (the sitemap with the new date)."""
        rng = random.Random(self.seed + 1)
        n = len(self.bodies)
        k = max(len(self.BIG_RESIZED) + 1, round(n * 0.01))
        pool = sorted(key for key in self.pages if key not in self.BIG_SAME + self.BIG_RESIZED
                      and key not in ("index.html", "404.html"))
        n_same = (k + 1) // 2 - len(self.BIG_SAME)
        n_resized = k - (k + 1) // 2 - len(self.BIG_RESIZED)
        chosen = rng.sample(pool, n_same + n_resized + k)
        same = sorted(self.BIG_SAME + chosen[:n_same])
        resized_pages = chosen[n_same:n_same + n_resized]
        deleted = sorted(chosen[n_same + n_resized:])
        letters = b"abcdefghijklmnopqrstuvwxyz"
        for key in same:  # a typo fix: one letter of the text replaced
            body = bytearray(self.bodies[key])
            start = body.index(b"<article")
            pos = rng.randrange(start + (len(body) - start) // 4, start + 3 * (len(body) - start) // 4)
            # the next letter of a paragraph's text (not of a tag or an attribute)
            pos = body.index(b"<p>", pos) + 3
            while body[pos] not in letters or body.rfind(b"<", 0, pos) > body.rfind(b">", 0, pos):
                pos += 1
            body[pos] = rng.choice([c for c in letters if c != body[pos]])
            self.bodies[key] = bytes(body)
        for key in resized_pages:  # a paragraph added in the middle of the text
            body = self.bodies[key]
            pos = body.index(b"\n", (body.index(b"<article") + body.index(b"</article>")) // 2) + 1
            self.bodies[key] = body[:pos] + self.para(rng, 3, 8).encode() + b"\n" + body[pos:]
        body = self.bodies["changelog/index.html"]
        pos = body.index(b"<h1>Changelog</h1>\n") + len(b"<h1>Changelog</h1>\n")
        release = f'<h2 id="9.6.0">9.6.0 <small>{REBUILD_DATE}</small></h2>\n{self._changelog_items(rng)}\n'
        self.bodies["changelog/index.html"] = body[:pos] + release.encode() + body[pos:]
        title, sections = self.pages["changelog/index.html"]
        self.pages["changelog/index.html"] = (title, [("9.6.0", "9.6.0", release)] + sections)
        for key in deleted:
            del self.bodies[key]
            del self.pages[key]
        self._rebuild_indexes(REBUILD_DATE)
        resized = sorted(resized_pages + self.BIG_RESIZED)
        for key in resized:
            assert key in self.bodies
        return same, resized, deleted


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="directory to write the site into (created; must be empty or missing)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mutated", action="store_true", help="write the site after the delta phase's change")
    args = p.parse_args()
    if os.path.isdir(args.out) and os.listdir(args.out):
        raise SystemExit(f"gen-docs-site.py: {args.out} is not empty")
    site = DocsSite(args.seed)
    if args.mutated:
        same, resized, deleted = site.mutate()
        print(f"mutated: {len(same)} same-size, {len(resized)} resized, {len(deleted)} deleted")
        for kind, keys in (("same-size", same), ("resized", resized), ("deleted", deleted)):
            for k in keys:
                print(f"  {kind:9} {k}")
    for key, body in site.bodies.items():
        path = os.path.join(args.out, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(body)
    total = sum(map(len, site.bodies.values()))
    print(f"{len(site.bodies)} files, {total:,} bytes ({total / 1e6:.1f} MB) in {args.out}")
    print("largest (bytes, gzip -6 ratio):")
    for key in sorted(site.bodies, key=lambda k: -len(site.bodies[k]))[:10]:
        body = site.bodies[key]
        print(f"  {len(body):>10,}  {len(body) / len(zlib.compress(body, 6)):5.2f}x  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
