//! The update agent's parts against real ones (`system-tests`): bundles made and signed by
//! Debian's `rauc`, checked by `rauc info` as the Pi checks them; bundles fetched from the
//! test's S3 server (SigV4, ETags, 304s) within the agent's budgets. The whole agent, with
//! RAUC installing and U-Boot counting boots, is the booted-image test's
//! (`image_boot::virt_updates_itself_from_the_bucket_and_rolls_back_a_broken_update`).
#![cfg(feature = "system-tests")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::s3::{S3Server, StoredObject, BUCKET};
use crate::common::Fixture;
use pi_failover::update::bundle::{self, Own};
use pi_failover::update::fetch::{self, FetchError, Fetched, Source};

/// A signing pair in `dir/NAME.{cert,key}.pem`.
fn keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.cert.pem")),
        dir.join(format!("{name}.key.pem")),
    );
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl req");
    (cert, key)
}

/// A small verity bundle for `compatible` at `version`, as `image/bundle.sh` makes them.
fn bundle(
    dir: &Path,
    name: &str,
    compatible: &str,
    version: &str,
    signer: &(PathBuf, PathBuf),
) -> PathBuf {
    let content = dir.join(format!("{name}-content"));
    std::fs::create_dir_all(&content).expect("content dir");
    // Content that does not compress: RAUC wants its squashfs larger than one block.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    std::fs::write(content.join("kernel.vfat"), noise(64 << 10)).expect("kernel");
    std::fs::write(content.join("rootfs.squashfs"), noise(256 << 10)).expect("rootfs");
    let out = dir.join(format!("{name}.raucb"));
    let status = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/image/bundle.sh"))
        .arg("--kernel")
        .arg(content.join("kernel.vfat"))
        .arg("--rootfs")
        .arg(content.join("rootfs.squashfs"))
        .args(["--compatible", compatible, "--version", version])
        .arg("--cert")
        .arg(&signer.0)
        .arg("--key")
        .arg(&signer.1)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("image/bundle.sh (needs rauc: apt-get install rauc)");
    assert!(status.success(), "image/bundle.sh");
    out
}

fn own() -> Own {
    Own {
        compatible: "pi-failover-rpi3-64".into(),
        version: "0.2.0".parse().expect("version"),
    }
}

/// The owner's bundle passes; a stranger's, a tampered one, another board's, an older one and
/// one rolled back before are refused, each saying why.
#[tokio::test]
async fn rauc_info_and_the_rules_accept_only_the_owners_newer_bundle_for_this_board() {
    let dir = tempfile::tempdir().expect("tempdir");
    let owner = keys(dir.path(), "owner");
    let stranger = keys(dir.path(), "stranger");
    let keyring = Some(owner.0.as_path());
    let mut rolled_back = BTreeMap::new();
    rolled_back.insert("0.4.0".to_owned(), "slot A never served".to_owned());

    let good = bundle(dir.path(), "good", "pi-failover-rpi3-64", "0.3.0", &owner);
    let manifest = bundle::info(&good, keyring)
        .await
        .expect("the owner's bundle");
    assert_eq!(manifest.version, "0.3.0");
    bundle::vet(&manifest, &own(), &rolled_back).expect("newer, this board");

    let theirs = bundle(
        dir.path(),
        "theirs",
        "pi-failover-rpi3-64",
        "0.3.0",
        &stranger,
    );
    let why = bundle::info(&theirs, keyring)
        .await
        .expect_err("a stranger's");
    assert!(
        why.contains("not a bundle signed by the owner's key"),
        "{why}"
    );

    // A byte of the signature changed after signing.
    let mut bytes = std::fs::read(&good).expect("read");
    let at = bytes.len() - 8 - 64;
    bytes[at] ^= 0x55;
    let tampered = dir.path().join("tampered.raucb");
    std::fs::write(&tampered, bytes).expect("write");
    let why = bundle::info(&tampered, keyring)
        .await
        .expect_err("tampered");
    assert!(
        why.contains("not a bundle signed by the owner's key"),
        "{why}"
    );

    for (name, compatible, version, refusal) in [
        (
            "pi4",
            "pi-failover-rpi4-64",
            "0.3.0",
            "made for pi-failover-rpi4-64",
        ),
        ("older", "pi-failover-rpi3-64", "0.1.0", "not newer"),
        ("same", "pi-failover-rpi3-64", "0.2.0", "not newer"),
        ("again", "pi-failover-rpi3-64", "0.4.0", "rolled back"),
    ] {
        let path = bundle(dir.path(), name, compatible, version, &owner);
        let manifest = bundle::info(&path, keyring)
            .await
            .expect("signed by the owner");
        let why = bundle::vet(&manifest, &own(), &rolled_back).expect_err(name);
        assert!(why.contains(refusal), "{name}: {why}");
    }
}

/// One conditional GET: absent is nothing to do, a new object is downloaded whole, the same
/// ETag costs a 304; an object over the size budget or the free space is refused without a
/// partial file left behind.
#[tokio::test]
async fn a_bundle_is_fetched_once_whole_and_only_within_its_budgets() {
    let server = S3Server::start().await;
    let fixture = Fixture::new();
    let config = fixture.s3_config(&server);
    let s3 = config.s3.as_ref().expect("[s3]");
    let client = pi_failover::aws::s3_client(s3, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = "updates/pi-failover-rpi3-64.raucb";
    let source = Source {
        bucket: BUCKET.into(),
        key: key.into(),
        max_bytes: 1 << 20,
        min_free_bytes: 0,
    };

    let absent = fetch::fetch(&client, &source, None, dir.path())
        .await
        .expect("absent");
    assert_eq!(absent, Fetched::Absent);

    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    server.bucket.put(key, StoredObject::new(body.clone()));
    let Fetched::Downloaded { path, etag, bytes } =
        fetch::fetch(&client, &source, None, dir.path())
            .await
            .expect("download")
    else {
        panic!("not downloaded");
    };
    assert_eq!(bytes, body.len() as u64);
    assert_eq!(std::fs::read(&path).expect("bundle"), body);
    assert!(!dir.path().join("bundle.raucb.part").exists());

    let not_modified = server.bucket.not_modified();
    let again = fetch::fetch(&client, &source, Some(&etag), dir.path())
        .await
        .expect("again");
    assert_eq!(again, Fetched::Unchanged);
    assert_eq!(
        server.bucket.not_modified(),
        not_modified + 1,
        "a 304, no download"
    );

    std::fs::remove_file(&path).expect("remove");
    let small = Source {
        max_bytes: 100_000,
        ..source.clone()
    };
    let too_large = fetch::fetch(&client, &small, None, dir.path()).await;
    assert!(
        matches!(too_large, Err(FetchError::TooLarge { .. })),
        "{too_large:?}"
    );
    let full = Source {
        min_free_bytes: u64::MAX / 2,
        ..source.clone()
    };
    let no_space = fetch::fetch(&client, &full, None, dir.path()).await;
    assert!(
        matches!(no_space, Err(FetchError::NoSpace { .. })),
        "{no_space:?}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "a refused bundle left {left:?}");
}
