fn main() {
    // include_dir! cannot tell cargo which files it read; without this, editing the demo's
    // sample site would not rebuild the binary.
    println!("cargo:rerun-if-changed=src/demo/site");
    println!("cargo:rerun-if-changed=build.rs");

    // The Pi's binary (static musl, the `pi` profile, which like `release` sets
    // panic = "abort") never unwinds: its `.eh_frame_hdr`, the sorted table an unwinder
    // searches for a function's frame description, is never read. Leaving it out saves 150 KB
    // of the 8 MiB budget (docs/benchmarks.md); a panic still prints its message and location,
    // without a backtrace. Cargo tells a build script the profile's family (PROFILE is
    // "release" for `pi`), not its panic strategy (CARGO_CFG_PANIC is the target's default),
    // hence the test on both. Set here rather than in rustflags (a profile cannot carry them
    // on stable; the Buildroot package writes its own .cargo/), so the card and CI link the
    // same binary.
    let var = |key: &str| std::env::var(key).unwrap_or_default();
    if var("PROFILE") == "release" && var("CARGO_CFG_TARGET_ENV") == "musl" {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
        println!("cargo:rustc-link-arg-bins=-Wl,-z,max-page-size=16384");
    }
}
