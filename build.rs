// include_dir! cannot tell cargo which files it read; without this, editing the demo's
// sample site would not rebuild the binary.
fn main() {
    println!("cargo:rerun-if-changed=src/demo/site");
}
