//! Request paths, from the raw URL path to the bytes of a reply.
//!
//! `request_key` is the first wall (it decides what a path means); the site index is the
//! second (it only holds regular files found inside the root). Both are checked on their own
//! and then together, through the real handler, against a small tree on disk whose root
//! holds symlinks that lead out of it. Properties:
//! - an accepted key is made of plain segments: joined onto a root, every component after the
//!   root is `Normal` (no `..`, no root or prefix, no NUL, backslash or control character);
//! - decoding happens once: the key, percent-encoded again, resolves to itself;
//! - the flags agree with the path (`directory` iff it ends in `/`, `has_dotfile` iff a
//!   segment is a dot-name other than `.well-known`);
//! - whatever the index answers for any key lies inside the root, and no reply body ever
//!   holds the bytes of the file outside it.
#![no_main]

use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use pi_failover::site::index::{Lookup, SiteIndex};
use pi_failover::site::resolve::{request_key, RequestKey};
use pi_failover::site::{handler, Site};

/// The bytes of the only file outside the root; no reply may contain them.
const SECRET: &[u8] = b"OUTSIDE-THE-ROOT-5f0c3e1d";

/// What a segment must have escaped to survive a second decoding unchanged.
const SEGMENT: &AsciiSet = &CONTROLS.add(b'%').add(b'/').add(b'\\').add(b'?').add(b'#');

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    indexes: [SiteIndex; 2],
    site: Site,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path();
        let outside = base.join("outside");
        let root = base.join("site");
        for d in [
            &outside,
            &root.join("a/b"),
            &root.join(".well-known"),
            &root.join(".git"),
        ] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(outside.join("secret.txt"), SECRET).expect("secret");
        for (rel, body) in [
            ("index.html", "root index"),
            ("404.html", "not found page"),
            ("a/index.html", "a index"),
            ("a/b/page.html", "page"),
            ("a/b/style.css", "css"),
            ("a/b/style.css.br", "br"),
            ("a/b/style.css.gz", "gz"),
            ("a/b/c%2e.html", "percent in a name"),
            ("café.html", "unicode name"),
            (".well-known/security.txt", "contact"),
            (".git/config", "hidden"),
            (".env", "hidden"),
        ] {
            std::fs::write(root.join(rel), body).expect("site file");
        }
        // Every way a symlink can lead out of the root: a file, a directory, a sibling that
        // the reply would pick by Accept-Encoding, a chain, and an absolute target.
        for (link, target) in [
            ("out.html", PathBuf::from("../outside/secret.txt")),
            ("out-dir", PathBuf::from("../outside")),
            (
                "a/b/page.html.gz",
                PathBuf::from("../../../outside/secret.txt"),
            ),
            ("a/b/page.html.br", outside.join("secret.txt")),
            ("chain.html", PathBuf::from("out.html")),
            ("a/index.html.br", PathBuf::from("../out-dir/secret.txt")),
            ("in.html", PathBuf::from("a/b/page.html")),
        ] {
            std::os::unix::fs::symlink(target, root.join(link)).expect("symlink");
        }
        let config_text = format!(
            "[site]\nroot = \"{}\"\nhostnames = [\"example.test\"]\n\
             [[tls.certificates]]\ncert = \"unused.pem\"\nkey = \"unused.pem\"\n",
            root.display()
        );
        let config = pi_failover::config::parse(&config_text, &base.join("fuzz.toml"))
            .expect("fuzz config parses");
        let root = root.canonicalize().expect("canonical root");
        Tree {
            indexes: [false, true].map(|dotfiles| {
                SiteIndex::build(&root, dotfiles, None).expect("index the fuzz tree")
            }),
            site: Site::new(&config).expect("site"),
            root,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let tree = tree();
    if let Ok(key) = request_key(raw) {
        check_key(raw, &key);
        for index in &tree.indexes {
            check_lookup(tree, index, &key);
        }
    }
    check_reply(tree, raw);
});

fn check_key(raw: &str, key: &RequestKey) {
    let text = key.key.as_str();
    assert!(
        !text.starts_with('/') && !text.ends_with('/') && !text.contains("//"),
        "{raw:?} → {text:?}: the key is segments joined by single slashes"
    );
    assert!(
        !text.contains(['\0', '\\']) && !text.chars().any(char::is_control),
        "{raw:?} → {text:?}: NUL, backslash or control character"
    );
    let mut dotfile = false;
    if !text.is_empty() {
        for segment in text.split('/') {
            assert!(
                segment != "." && segment != "..",
                "{raw:?} → {text:?}: dot segment"
            );
            dotfile |= segment.starts_with('.') && segment != ".well-known";
        }
    }
    assert_eq!(key.has_dotfile, dotfile, "{raw:?}: has_dotfile");
    assert_eq!(
        key.directory,
        raw == "/" || raw.ends_with('/'),
        "{raw:?}: directory"
    );

    // Lexically inside any root: `Path::join` would replace the root with an absolute key
    // and `..` would climb out of it; neither may be possible.
    let root = Path::new("/srv/site");
    let joined = root.join(text);
    let rest = joined
        .strip_prefix(root)
        .expect("the key stays under the root");
    assert!(
        rest.components().all(|c| matches!(c, Component::Normal(_))),
        "{raw:?} → {joined:?}: a component that is not a plain name"
    );
    assert_eq!(
        rest.components().count(),
        text.split('/').filter(|s| !s.is_empty()).count(),
        "{raw:?} → {joined:?}: a segment was merged or dropped on the way to a path"
    );

    // Decoded exactly once: encoding the key again gives back the same key, so no input
    // decodes further on a second pass (`%252e` must not become `.` anywhere).
    let reencoded: String = std::iter::once(String::new())
        .chain(
            text.split('/')
                .filter(|s| !s.is_empty())
                .map(|s| utf8_percent_encode(s, SEGMENT).to_string()),
        )
        .collect::<Vec<_>>()
        .join("/");
    let reencoded = if reencoded.is_empty() {
        "/".to_owned()
    } else {
        reencoded
    };
    let again = request_key(&reencoded)
        .unwrap_or_else(|e| panic!("{raw:?} → {text:?} → {reencoded:?} rejected: {e}"));
    assert_eq!(again.key, key.key, "{raw:?}: decoding is not idempotent");
}

fn check_lookup(tree: &Tree, index: &SiteIndex, key: &RequestKey) {
    if let Lookup::File(entry) = index.lookup(&key.key, key.directory) {
        for path in std::iter::once(&entry.path)
            .chain(entry.brotli.iter())
            .chain(entry.gzip.iter())
        {
            let real = path.canonicalize().unwrap_or_else(|_| path.clone());
            assert!(
                real.starts_with(&tree.root) && path.starts_with(&tree.root),
                "key {:?} is served from {path:?} ({real:?}), outside {:?}",
                key.key,
                tree.root
            );
            let bytes = std::fs::read(&real).unwrap_or_default();
            assert!(
                bytes != SECRET,
                "key {:?} is served from the file outside the root",
                key.key
            );
        }
    }
}

/// The whole HTTPS handler, as a reader who accepts every encoding would meet it.
fn check_reply(tree: &Tree, raw: &str) {
    let Ok(request) = http::Request::builder()
        .uri(raw)
        .header("host", "example.test")
        .header("accept-encoding", "br, gzip")
        .body(())
    else {
        return;
    };
    let response = handler::https(&tree.site, &request);
    let status = response.status();
    let mut body = response.into_body();
    let mut cx = Context::from_waker(Waker::noop());
    let mut bytes = Vec::new();
    // File bodies read with pread when polled, so a no-op waker drives them to the end.
    loop {
        match http_body::Body::poll_frame(Pin::new(&mut body), &mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Poll::Ready(Some(Err(e))) => panic!("{raw:?}: body error {e}"),
            Poll::Ready(None) => break,
            Poll::Pending => panic!("{raw:?}: a file body is never pending"),
        }
    }
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET),
        "{raw:?}: the reply ({status}) carries the file outside the root"
    );
}
