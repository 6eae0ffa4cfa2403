//! Stamps this compilation of the crate with a value no other compilation shares, so the
//! daemon can tell an `airlock-helper` built with it from a stale one (see `helper_binary`).

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    println!(
        "cargo:rustc-env=AIRLOCK_HELPER_BUILD={now:x}-{:x}",
        std::process::id()
    );
}
