//! The slot the system booted from, RAUC's marking of it, and RAUC's view of the slots.

use std::time::Duration;

use super::rauc::{run_bounded, RaucError};

const RAUC_TIMEOUT: Duration = Duration::from_secs(60);

/// The slot the boot script booted (`rauc.slot=A` on the kernel's command line), if any.
pub fn booted() -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    from_cmdline(&cmdline)
}

fn from_cmdline(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|word| word.strip_prefix("rauc.slot="))
        .filter(|slot| !slot.is_empty())
        .map(str::to_owned)
}

/// `rauc status mark-good`: RAUC's service (as root, over D-Bus) gives the booted slot its
/// tries back.
pub async fn mark_good() -> Result<(), RaucError> {
    run_bounded("rauc", &["status", "mark-good"], RAUC_TIMEOUT, false)
        .await
        .map(drop)
}

/// One root slot as `rauc status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotView {
    /// `A` or `B`.
    pub name: String,
    /// `booted` or `inactive`.
    pub state: String,
    /// `good` or `bad`: whether the boot counter will try it.
    pub boot_status: String,
    /// The version of the bundle last installed into it; `null` for the slot the card was
    /// flashed with.
    pub version: Option<String>,
}

/// `rauc status`: the root slots.
pub async fn slots() -> Result<Vec<SlotView>, RaucError> {
    let json = run_bounded(
        "rauc",
        &["status", "--detailed", "--output-format=json"],
        RAUC_TIMEOUT,
        true,
    )
    .await?;
    parse_slots(&json).map_err(RaucError::Refused)
}

/// Read defensively: RAUC's JSON has grown between versions (1.8 nests a slot's bundle under
/// `slot_status`), so each field is looked for where any version puts it.
fn parse_slots(json: &str) -> Result<Vec<SlotView>, String> {
    use serde_json::Value;
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("rauc status said no JSON: {e}"))?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut views = Vec::new();
    for entry in value
        .get("slots")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(obj) = entry.as_object() else {
            continue;
        };
        for slot in obj.values() {
            if text(slot, "class").as_deref() != Some("rootfs") {
                continue;
            }
            let status = slot.get("slot_status");
            let version = status
                .and_then(|s| s.get("bundle"))
                .and_then(|b| text(b, "version"))
                .or_else(|| text(slot, "bundle.version"))
                .or_else(|| status.and_then(|s| text(s, "bundle.version")));
            views.push(SlotView {
                name: text(slot, "bootname").unwrap_or_default(),
                state: text(slot, "state").unwrap_or_default(),
                boot_status: text(slot, "boot_status").unwrap_or_default(),
                version,
            });
        }
    }
    views.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rauc_status_json_gives_both_root_slots() {
        let json = r#"{"compatible":"pi-failover-rpi3-64","variant":"","booted":"B","boot_primary":"rootfs.1","slots":[
            {"kernel.0":{"class":"kernel","device":"/dev/mmcblk0p2","type":"vfat","bootname":null,"state":"inactive","parent":"rootfs.0","mountpoint":null,"boot_status":null}},
            {"rootfs.0":{"class":"rootfs","device":"/dev/mmcblk0p3","type":"raw","bootname":"A","state":"inactive","parent":null,"mountpoint":null,"boot_status":"good"}},
            {"rootfs.1":{"class":"rootfs","device":"/dev/mmcblk0p6","type":"raw","bootname":"B","state":"booted","parent":null,"mountpoint":"/","boot_status":"good",
              "slot_status":{"bundle":{"compatible":"pi-failover-rpi3-64","version":"0.2.0"},"installed":{"count":1}}}}]}"#;
        let slots = parse_slots(json).expect("parses");
        assert_eq!(
            slots,
            vec![
                SlotView {
                    name: "A".into(),
                    state: "inactive".into(),
                    boot_status: "good".into(),
                    version: None
                },
                SlotView {
                    name: "B".into(),
                    state: "booted".into(),
                    boot_status: "good".into(),
                    version: Some("0.2.0".into())
                },
            ]
        );
        assert!(parse_slots("no").is_err());
    }

    #[test]
    fn the_booted_slot_is_the_last_rauc_slot_word() {
        let cases = [
            (
                "ro rootwait root=PARTUUID=5049f0a1-03 rauc.slot=A",
                Some("A"),
            ),
            ("rauc.slot=A quiet rauc.slot=B", Some("B")),
            ("console=ttyAMA0 root=/dev/mmcblk0p2", None),
            ("rauc.slot= ro", None),
            ("xrauc.slot=A", None),
        ];
        for (cmdline, want) in cases {
            assert_eq!(from_cmdline(cmdline).as_deref(), want, "{cmdline}");
        }
    }
}
